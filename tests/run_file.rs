//! `ossnotify run` over a file: every message `ossnotify match` predicts
//! arrives at its sinks (a file, and an MNS topic on mns-dev over a socket)
//! in the sink's encoding; a sink whose topic does not exist dead-letters
//! its messages; invalid records land in the dead-letter store with their
//! line; the process exits 0 when everything is done.

mod support;

use std::collections::BTreeSet;

use base64::Engine as _;
use ossnotify_sinks::dead_letter::read_all;

fn config(d: &support::Dir, endpoint: &str) -> std::path::PathBuf {
    let input = support::repo("configs/demo-oplogs.ndjson");
    let dl = d.path("dead-letter");
    let archive = d.path("archive.ndjson");
    d.write(
        "run.toml",
        &format!(
            r#"
[source]
type = "file"
path = "{input}"
key_encoding = "url"

[pipeline]
workers = 2
queue_capacity = 4

[dead_letter]
path = "{dl}"

[sinks.archive]
type = "file"
path = "{archive}"
encoding = "json"

[sinks.events]
type = "mns_topic"
endpoint = "{endpoint}"
topic = "oss-events"
access_key_id = "AK"
access_key_secret = "SK"

[sinks.gone]
type = "mns_topic"
endpoint = "{endpoint}"
topic = "no-such-topic"
access_key_id = "AK"
access_key_secret = "SK"

[[rules]]
id = "uploads"
bucket = "photos-shenzhen"
events = ["ObjectCreated:*"]
resources = ["uploads/*"]
sinks = ["archive", "events"]

[[rules]]
id = "downloads"
bucket = "photos-shenzhen"
events = ["ObjectDownloaded:GetObject"]
sinks = ["archive"]

[[rules]]
id = "deletes"
bucket = "photos-shenzhen"
events = ["ObjectRemoved:*"]
sinks = ["gone"]

[[rules]]
id = "logs"
bucket = "app-logs-hk"
events = ["ObjectCreated:*", "ObjectReplication:*"]
sinks = ["events"]
"#,
            input = input.display(),
            dl = dl.display(),
            archive = archive.display()
        ),
    )
}

/// (sink, message JSON) for every message `ossnotify match` predicts.
fn predicted(config: &std::path::Path) -> BTreeSet<(String, String)> {
    let out = support::run(
        &[
            "match",
            "-c",
            config.to_str().unwrap(),
            support::repo("configs/demo-oplogs.ndjson")
                .to_str()
                .unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let mut set = BTreeSet::new();
    for line in support::text(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for s in v["sinks"].as_array().unwrap() {
            set.insert((s.as_str().unwrap().to_owned(), v["message"].to_string()));
        }
    }
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_what_match_predicts_and_dead_letters_the_rest() {
    let d = support::Dir::new();
    let server = support::mns_dev(support::dev_config()).await;
    let cfg = config(&d, &server.endpoint());
    let want = predicted(&cfg);
    assert!(want.iter().any(|(s, _)| s == "gone") && want.iter().any(|(s, _)| s == "events"));

    let cfg2 = cfg.clone();
    let out = tokio::task::spawn_blocking(move || {
        // Sink `gone` is a missing topic on purpose: no probe.
        support::run(
            &["run", "-c", cfg2.to_str().unwrap(), "--no-check-sinks"],
            b"",
        )
    })
    .await
    .unwrap();
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let mut got = BTreeSet::new();
    for line in std::fs::read_to_string(d.path("archive.ndjson"))
        .unwrap()
        .lines()
    {
        // Normalize through serde_json, as `predicted` does.
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        got.insert(("archive".to_owned(), v.to_string()));
    }
    for a in server.accepted() {
        let json = base64::engine::general_purpose::STANDARD
            .decode(&a.body)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        got.insert(("events".to_owned(), v.to_string()));
    }
    let entries = read_all(&d.path("dead-letter")).unwrap();
    let mut invalid = Vec::new();
    for e in &entries {
        match e.kind.as_str() {
            "delivery" => {
                assert_eq!(e.sink, "gone");
                assert!(e.error.starts_with("TopicNotExist"), "{}", e.error);
                let json = base64::engine::general_purpose::STANDARD
                    .decode(&e.payload)
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
                got.insert(("gone".to_owned(), v.to_string()));
            }
            "invalid_record" => invalid.push(e.source.rsplit(':').next().unwrap().to_owned()),
            other => panic!("unexpected entry kind {other}"),
        }
    }
    assert_eq!(
        got, want,
        "delivered + dead-lettered must be exactly what match predicts"
    );
    invalid.sort();
    assert_eq!(invalid, vec!["11", "9"]);
    let messages = want.len();
    assert!(
        stderr.contains(&format!("run: 11 records (2 invalid, 2 skipped, 0 without a matching rule); {messages} messages")),
        "{stderr}"
    );
    server.stop();
}

/// A sink that gives up on every message (its topic does not exist) writes
/// every message to the dead-letter store but logs it once per 30 s, saying
/// how many like it were left out, instead of a line per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_sink_logs_at_a_limited_rate_and_dead_letters_everything() {
    let d = support::Dir::new();
    let server = support::mns_dev(support::dev_config()).await;
    let cfg = d.write(
        "gone.toml",
        &format!(
            r#"[source]
type = "stdin"

[dead_letter]
path = "{dl}"

[sinks.gone]
type = "mns_topic"
endpoint = "{endpoint}"
topic = "no-such-topic"
access_key_id = "AK"
access_key_secret = "SK"

[[rules]]
id = "all"
bucket = "b"
events = ["ObjectCreated:*"]
sinks = ["gone"]
"#,
            dl = d.path("dl").display(),
            endpoint = server.endpoint()
        ),
    );
    let n = 2000;
    let input: String = (0..n)
        .map(|i| format!("{{\"time\":0,\"operation\":\"PutObject\",\"bucket\":\"b\",\"object\":\"k{i}\",\"bucket_location\":\"oss-cn-hangzhou\",\"owner_id\":\"o\",\"request_id\":\"r{i}\",\"http_status\":200}}\n"))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        // A missing topic on purpose: no probe.
        support::run(
            &["run", "-c", cfg.to_str().unwrap(), "--no-check-sinks"],
            input.as_bytes(),
        )
    })
    .await
    .unwrap();
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(read_all(&d.path("dl")).unwrap().len(), n);
    let logged = stderr.matches("giving up on a message").count();
    assert_eq!(logged, 1, "{stderr}");
    server.stop();
}

/// Freshness: `ossnotify_oldest_pending_seconds` grows while a sink is
/// down (here without isolation, so records wait on it), and
/// `ossnotify_event_age_seconds` records, per delivered message, how long
/// after the operation it arrived: the whole outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_metrics_grow_with_a_sink_outage() {
    use std::io::Write;
    let d = support::Dir::new();
    let server = support::mns_dev(ossnotify_mns_dev::DevConfig {
        fail_first: std::time::Duration::from_secs(6),
        ..support::dev_config()
    })
    .await;
    let port = support::free_port();
    let cfg = d.write(
        "fresh.toml",
        &format!(
            "[source]\ntype = \"stdin\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.events]\ntype = \"mns_topic\"\nendpoint = \"{}\"\ntopic = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\n[sinks.events.retry]\nmax_attempts = 1000\ninitial_backoff_ms = 50\nmax_backoff_ms = 200\n[sinks.events.breaker]\nenabled = false\n\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"events\"]\n",
            d.path("dl").display(),
            server.endpoint()
        ),
    );
    let metrics = || support::http_get(port, "/metrics");
    let value = support::metric;
    let mut child = support::run_on_stdin(&cfg);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..20 {
        writeln!(stdin, "{{\"time\":\"{now_ms}\",\"operation\":\"PutObject\",\"bucket\":\"b\",\"object\":\"k{i}\",\"bucket_location\":\"oss-cn-hangzhou\",\"owner_id\":\"o\",\"request_id\":\"r{i}\",\"http_status\":200}}").unwrap();
    }
    stdin.flush().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let during = metrics();
    let stale = value(&during, "ossnotify_oldest_pending_seconds");
    assert!(stale >= 2.5, "oldest pending {stale} s during the outage");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.accepted().len() < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = metrics();
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let sink = "{sink=\"events\"}";
    assert_eq!(
        value(&after, &format!("ossnotify_event_age_seconds_count{sink}")),
        20.0,
        "{after}"
    );
    let mean = value(&after, &format!("ossnotify_event_age_seconds_sum{sink}")) / 20.0;
    assert!(mean >= 5.0, "mean event age {mean} s after a 6 s outage");
    assert_eq!(
        value(
            &after,
            "ossnotify_event_age_seconds_bucket{sink=\"events\",le=\"2.5\"}"
        ),
        0.0
    );
    assert_eq!(
        value(&after, "ossnotify_oldest_pending_seconds"),
        0.0,
        "{after}"
    );
    server.stop();
}

/// How many messages `server` accepted once it has `want` (or 30 s passed).
async fn arrived(server: &ossnotify_mns_dev::DevServer, want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.accepted().len() < want && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.accepted().len()
}

/// Short-lived MNS credentials from a file a sidecar rewrites: mns-dev
/// accepts the first set, then both, then only the second, while a stdin
/// run keeps sending. Every message arrives; nothing is dead-lettered for
/// the rotation. A static STS token is sent too, and a wrong one refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_rotate_during_a_run_without_a_failure() {
    use ossnotify_mns_dev::DevCredential;
    use std::io::Write;
    let d = support::Dir::new();
    let cred = |n: &str| DevCredential {
        key_id: format!("STS.{n}"),
        secret: format!("secret-{n}"),
        token: Some(format!("token-{n}")),
    };
    let server = support::mns_dev(ossnotify_mns_dev::DevConfig {
        access_key_id: "STS.A".into(),
        access_key_secret: "secret-A".into(),
        security_token: Some("token-A".into()),
        ..support::dev_config()
    })
    .await;
    let file = d.path("creds.json");
    let write_creds = |n: &str| {
        let tmp = d.path("creds.tmp");
        std::fs::write(&tmp, format!(r#"{{"AccessKeyId":"STS.{n}","AccessKeySecret":"secret-{n}","SecurityToken":"token-{n}","Expiration":"2099-01-01T00:00:00Z"}}"#)).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    write_creds("A");
    let cfg = d.write(
        "sts.toml",
        &format!(
            "[source]\ntype = \"stdin\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.events]\ntype = \"mns_topic\"\nendpoint = \"{}\"\ntopic = \"oss-events\"\ncredentials_file = \"{}\"\n\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"events\"]\n",
            d.path("dl").display(),
            server.endpoint(),
            file.display()
        ),
    );
    let log = d.path("run.log");
    let mut child = support::bin()
        .args(["run", "-c", cfg.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut sent = 0;
    let mut send = |n: usize| {
        for _ in 0..n {
            writeln!(stdin, "{{\"time\":0,\"operation\":\"PutObject\",\"bucket\":\"b\",\"object\":\"k{sent}\",\"bucket_location\":\"oss-cn-hangzhou\",\"owner_id\":\"o\",\"request_id\":\"r{sent}\",\"http_status\":200}}").unwrap();
            sent += 1;
        }
        stdin.flush().unwrap();
    };
    send(50);
    assert_eq!(arrived(&server, 50).await, 50);
    // The rotation: both accepted while the file changes, then only B.
    server.set_credentials(vec![cred("A"), cred("B")]);
    write_creds("B");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("MNS credentials rotated")
    {
        send(1);
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.set_credentials(vec![cred("B")]);
    send(50);
    let total = sent;
    assert_eq!(arrived(&server, total).await, total);
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(read_all(&d.path("dl")).unwrap().is_empty());
    assert!(!std::fs::read_to_string(&log).unwrap().contains("giving up"));

    // A static token: sent with the key, and a wrong one refused for good.
    use ossnotify_sinks::mns::credentials::{Credentials, Source};
    let client = |token: &str| {
        ossnotify_sinks::mns::client::MnsClient::new(
            &server.endpoint(),
            "",
            ossnotify_sinks::Secret::from(String::new()),
            std::time::Duration::from_secs(5),
        )
        .unwrap()
        .with_credentials(Source::Fixed(std::sync::Arc::new(Credentials {
            key_id: "STS.B".into(),
            secret: ossnotify_sinks::Secret::from("secret-B".to_owned()),
            token: Some(ossnotify_sinks::Secret::from(token.to_owned())),
        })))
    };
    let m = ossnotify_sinks::mns::xml::OutMessage {
        body: "x".into(),
        ..Default::default()
    };
    assert!(client("token-B").publish("oss-events", &m).await.is_ok());
    let refused = client("token-A")
        .publish("oss-events", &m)
        .await
        .unwrap_err();
    assert!(
        refused.is_permanent() && refused.code() == "SecurityTokenMismatch",
        "{refused}"
    );
    server.stop();
}
