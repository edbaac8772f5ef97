//! Permanent failures land in the dead-letter store; `ossnotify replay`
//! delivers them once the destination exists, and loses nothing when it
//! cannot. Against `mns-dev` over real sockets.

mod support;

use ossnotify::config;
use ossnotify_sinks::dead_letter::read_all;
use ossnotify_sinks::mns::dev_server::DevConfig;
use ossnotify_sinks::{deliver_or_dead_letter, DeadLetter, DeadLetterStore, Envelope, Outcome};
use std::path::Path;

fn write_config(d: &support::Dir, endpoint: &str) -> std::path::PathBuf {
    let dl = d.path("dead-letter");
    d.write(
        "c.toml",
        &format!(
            "[dead_letter]\npath = \"{}\"\n\n[sinks.events]\ntype = \"mns_topic\"\nendpoint = \"{endpoint}\"\ntopic = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nrequest_timeout_ms = 1000\n\n[sinks.events.retry]\nmax_attempts = 2\ninitial_backoff_ms = 1\nmax_backoff_ms = 5\n",
            dl.display()
        ),
    )
}

async fn run_replay(config: &Path) -> (i32, String) {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = support::run(&["replay", "-c", config.to_str().unwrap()], b"");
        (
            out.status.code().unwrap_or(-1),
            support::text(&out.stdout) + &support::text(&out.stderr),
        )
    })
    .await
    .unwrap()
}

fn envelopes() -> Vec<Envelope> {
    (0..5)
        .map(|i| Envelope {
            payload: format!("eyJldmVudHMiOltdfQ{i}=="),
            rule_id: "rule-a".into(),
            key: format!("bucket/k{i}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_404_is_dead_lettered_and_replay_delivers_it() {
    let d = support::Dir::new();
    let missing = support::mns_dev(DevConfig {
        topics: vec![],
        ..support::dev_config()
    })
    .await;
    let path = write_config(&d, &missing.endpoint());
    let loaded = config::load(&path).unwrap().config;
    let sink = loaded.sinks[0].config.build("events").unwrap();
    let batch = envelopes();
    let store = DeadLetterStore::open(&loaded.dead_letter.path).unwrap();
    let outcomes = deliver_or_dead_letter(sink.as_ref(), &batch, &store)
        .await
        .unwrap();
    // 404 TopicNotExist is permanent: one attempt, no retries.
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Failed { error, attempts: 1 } if error.starts_with("TopicNotExist"))), "{outcomes:?}");
    assert_eq!(missing.requests(), 5);
    let mut landed = read_all(store.dir()).unwrap();
    landed.sort_by(|a, b| a.payload.cmp(&b.payload));
    assert_eq!(landed.len(), 5);
    for (e, d) in batch.iter().zip(&landed) {
        assert_eq!(
            (d.kind.as_str(), d.sink.as_str(), d.rule_id.as_str()),
            ("delivery", "events", "rule-a")
        );
        assert_eq!((&d.key, &d.payload, d.attempts), (&e.key, &e.payload, 1));
        assert!(
            d.error
                .starts_with("TopicNotExist: The topic you provided is not exist. (request id "),
            "{}",
            d.error
        );
    }
    missing.stop();

    // The topic exists now.
    let server = support::mns_dev(support::dev_config()).await;
    let path = write_config(&d, &server.endpoint());
    let (code, out) = run_replay(&path).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("replay: 5 delivered, 0 still failing (kept), 0 not replayable (kept)"),
        "{out}"
    );
    // Published concurrently: every one, in any order.
    let mut got: Vec<String> = server.accepted().into_iter().map(|a| a.body).collect();
    got.sort();
    assert_eq!(
        got,
        batch.iter().map(|e| e.payload.clone()).collect::<Vec<_>>()
    );
    assert!(read_all(store.dir()).unwrap().is_empty());
    // Nothing left: a second replay sends nothing.
    let (code, out) = run_replay(&path).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replay: 0 delivered"), "{out}");
    assert_eq!(server.accepted().len(), 5);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_that_cannot_deliver_keeps_every_entry() {
    let d = support::Dir::new();
    // Nothing listens here: every attempt is a network error.
    let path = write_config(&d, "http://127.0.0.1:9");
    let loaded = config::load(&path).unwrap().config;
    let store = DeadLetterStore::open(&loaded.dead_letter.path).unwrap();
    let before: Vec<DeadLetter> = envelopes()
        .iter()
        .map(|e| {
            DeadLetter::delivery(
                "events",
                &e.rule_id,
                &e.key,
                &e.payload,
                8,
                "InternalError: earlier",
            )
        })
        .chain(std::iter::once(DeadLetter::invalid_record(
            "{not json",
            "not valid JSON",
            "oss-oplog/0/17",
        )))
        .collect();
    store.append(&before).unwrap();
    let (code, out) = run_replay(&path).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("replay: 0 delivered, 5 still failing (kept), 1 not replayable (kept)"),
        "{out}"
    );
    let after = read_all(store.dir()).unwrap();
    assert_eq!(after.len(), 6);
    let payloads = |v: &[DeadLetter]| {
        let mut p: Vec<String> = v.iter().map(|e| e.payload.clone()).collect();
        p.sort();
        p
    };
    assert_eq!(payloads(&after), payloads(&before));
    // Kept as they were: a replay takes entries out, never rewrites them
    // (it logs the new error).
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_appends_one_message_per_line() {
    let d = support::Dir::new();
    let out = d.path("events.ndjson");
    let path = d.write(
        "c.toml",
        &format!(
            "[sinks.archive]\ntype = \"file\"\npath = \"{}\"\nencoding = \"json\"\n",
            out.display()
        ),
    );
    let loaded = config::load(&path).unwrap().config;
    let sink = loaded.sinks[0].config.build("archive").unwrap();
    let batch = envelopes();
    assert!(sink
        .deliver(&batch[..2])
        .await
        .iter()
        .all(|o| *o == Outcome::Delivered));
    assert!(sink
        .deliver(&batch[2..])
        .await
        .iter()
        .all(|o| *o == Outcome::Delivered));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        batch.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>()
    );
}
