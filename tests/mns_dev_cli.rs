//! `ossnotify mns-dev` as a process: a client signs requests to it over a
//! socket, it records what it accepted, and it stops on SIGTERM.

mod support;

use std::process::Command;
use std::time::Duration;

use ossnotify_sinks::mns::client::{self, MnsClient};
use ossnotify_sinks::mns::xml::OutMessage;
use ossnotify_sinks::{RetryConfig, Secret};

#[test]
fn mns_dev_process_accepts_signed_requests_and_records_them() {
    let dir = support::Dir::new();
    let record = dir.path("accepted.ndjson");
    let mut cmd = support::bin();
    cmd.args([
        "mns-dev",
        "--listen",
        "127.0.0.1:0",
        "--access-key-id",
        "AK",
        "--access-key-secret",
        "SK",
    ])
    .args([
        "--topics",
        "t1,t2",
        "--queues",
        "q1",
        "--record",
        record.to_str().unwrap(),
    ]);
    let (mut child, first) = support::start_mns_dev(cmd);
    assert!(
        first.starts_with("mns-dev listening on http://127.0.0.1:"),
        "{first}"
    );
    assert!(first.contains("(topics: t1,t2; queues: q1)"), "{first}");
    let endpoint = first.split_whitespace().nth(3).unwrap().to_owned();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = MnsClient::new(
            &endpoint,
            "AK",
            Secret::from("SK".to_owned()),
            Duration::from_secs(5),
        )
        .unwrap();
        let retry = RetryConfig::default();
        let m = |b: &str| OutMessage {
            body: b.into(),
            ..Default::default()
        };
        client::publish_with_retry(&c, "t2", &m("to-topic"), &retry)
            .await
            .unwrap();
        let sent = client::send_with_retry(&c, "q1", &[m("a"), m("b"), m("c")], &retry).await;
        assert!(sent.iter().all(Result::is_ok));
        let bad = MnsClient::new(
            &endpoint,
            "AK",
            Secret::from("wrong".to_owned()),
            Duration::from_secs(5),
        )
        .unwrap();
        let (f, _) = client::publish_with_retry(&bad, "t1", &m("no"), &retry)
            .await
            .unwrap_err();
        assert_eq!(f.code(), "SignatureDoesNotMatch");
    });

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().into(),
                l["name"].as_str().unwrap().into(),
                l["body"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("topic", "t2", "to-topic"),
        ("queue", "q1", "a"),
        ("queue", "q1", "b"),
        ("queue", "q1", "c"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
}

#[test]
fn mns_dev_rejects_bad_flags() {
    let out = support::run(
        &[
            "mns-dev",
            "--access-key-id",
            "a",
            "--access-key-secret",
            "b",
            "--fail-rate",
            "2",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(support::text(&out.stderr).contains("--fail-rate must be between 0 and 1"));
}
