//! The MNS sinks over HTTPS (rustls): `mns-dev` serving TLS with a
//! certificate the client trusts through `ca_file`; and a certificate it
//! does not trust is refused, not delivered to.

use std::sync::Arc;

use ossnotify_mns_dev::{DevConfig, DevServer};
use ossnotify_sinks::mns::config::MnsTopicConfig;
use ossnotify_sinks::{Envelope, Outcome, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_sink_over_https() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = DevConfig {
        access_key_id: "AK".into(),
        access_key_secret: "SK".into(),
        topics: vec!["oss-events".into()],
        ..DevConfig::default()
    };
    let server = DevServer::start_tls(cfg, listener, Arc::new(tls)).unwrap();
    assert!(server.endpoint().starts_with("https://"));

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let sink_config = |ca_line: &str| -> MnsTopicConfig {
        toml::from_str(&format!(
            "endpoint = \"https://localhost:{port}\"\ntopic = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\n{ca_line}\n[retry]\nmax_attempts = 2\ninitial_backoff_ms = 1\nmax_backoff_ms = 2\n"
        ))
        .unwrap()
    };
    let batch: Vec<Envelope> = (0..50)
        .map(|i| Envelope {
            payload: format!("tls-{i}"),
            rule_id: "r".into(),
            key: "b/k".into(),
            ..Default::default()
        })
        .collect();

    let trusted = sink_config(&format!("ca_file = \"{}\"", ca.display()))
        .build("events")
        .unwrap();
    assert_eq!(trusted.deliver(&batch).await, vec![Outcome::Delivered; 50]);
    assert_eq!(server.accepted().len(), 50);

    // Without the CA the handshake fails: nothing is sent.
    let untrusted = sink_config("").build("events").unwrap();
    let out = untrusted.deliver(&batch[..1]).await;
    assert!(
        matches!(&out[0], Outcome::Deferred { error, .. } if error.starts_with("NetworkError")),
        "{out:?}"
    );
    assert_eq!(server.accepted().len(), 50);
    server.stop();
}
