//! Permanent failures land in the dead-letter store; `ossnotify replay`
//! delivers them once the destination exists, and loses nothing when it
//! cannot. Against `mns-dev` over real sockets.

mod support;

use ossnotify::config;
use ossnotify_mns_dev::DevConfig;
use ossnotify_sinks::dead_letter::read_all;
use ossnotify_sinks::{deliver_or_dead_letter, DeadLetter, DeadLetterStore, Envelope, Outcome};
use std::path::Path;

fn write_config(d: &support::Dir, endpoint: &str) -> std::path::PathBuf {
    let dl = d.path("dead-letter");
    d.write(
        "c.toml",
        &format!(
            "[dead_letter]\npath = \"{}\"\n\n[sinks.events]\ntype = \"mns_topic\"\nendpoint = \"{endpoint}\"\ntopic = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nrequest = {{ timeout_ms = 1000 }}\n\n[sinks.events.retry]\nmax_attempts = 2\ninitial_backoff_ms = 1\nmax_backoff_ms = 5\n",
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
            ..Default::default()
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
    let outcomes = deliver_or_dead_letter(sink.as_ref(), &batch, &[], &store)
        .await
        .unwrap();
    // 404 TopicNotExist is permanent: one attempt, no retries.
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Failed { error, attempts: 1 } if error.starts_with("TopicNotExist"))), "{outcomes:?}");
    assert_eq!(missing.requests(), 5);
    let mut landed = read_all(&loaded.dead_letter.path).unwrap();
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
    assert!(read_all(&loaded.dead_letter.path).unwrap().is_empty());
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
    let after = read_all(&loaded.dead_letter.path).unwrap();
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

/// A PutObject for bucket `b` whose request id is `r-{seq}`.
fn record(seq: usize, pad: usize) -> String {
    format!(
        "{{\"time\":0,\"operation\":\"PutObject\",\"bucket\":\"b\",\"object\":\"k{seq}{}\",\"bucket_location\":\"oss-cn-hangzhou\",\"owner_id\":\"o\",\"request_id\":\"r-{seq}\",\"http_status\":200}}\n",
        "p".repeat(pad)
    )
}

/// The request id of a Base64 message.
fn seq_of(payload: &str) -> usize {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["events"][0]["responseElements"]["requestId"]
        .as_str()
        .unwrap()[2..]
        .parse()
        .unwrap()
}

/// A stdin run whose one sink publishes to `topic` on `endpoint`.
fn stdin_config(
    d: &support::Dir,
    file: &str,
    endpoint: &str,
    topic: &str,
    extra: &str,
) -> std::path::PathBuf {
    d.write(
        file,
        &format!(
            "[source]\ntype = \"stdin\"\n\n[dead_letter]\npath = \"{}\"\n{extra}\n[sinks.events]\ntype = \"mns_topic\"\nendpoint = \"{endpoint}\"\ntopic = \"{topic}\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\n\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"events\"]\n",
            d.path("dead-letter").display()
        ),
    )
}

/// `dead-letter replay` run over and over while a daemon appends dead
/// letters to the same store: every message ends delivered by a replay or
/// still in the store, never both, never twice, and the last replay leaves
/// the store empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_while_the_daemon_appends_loses_nothing_and_leaves_nothing_behind() {
    use std::io::Write;
    let d = support::Dir::new();
    let server = support::mns_dev(support::dev_config()).await;
    // The daemon's topic does not exist (permanent: dead-lettered); the
    // replay's does.
    let daemon_cfg = stdin_config(&d, "daemon.toml", &server.endpoint(), "no-such-topic", "");
    let replay_cfg = stdin_config(&d, "replay.toml", &server.endpoint(), "oss-events", "");
    // Its destination is broken on purpose: started without the probe.
    let mut daemon = support::run_on_stdin_with(&daemon_cfg, &["--no-check-sinks"]);
    let mut stdin = daemon.stdin.take().unwrap();
    let n = 600;
    let writer = std::thread::spawn(move || {
        for i in 0..n {
            stdin.write_all(record(i, 0).as_bytes()).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(8));
        }
    });
    let replay = |cfg: std::path::PathBuf| {
        let out = support::run(&["dead-letter", "replay", "-c", cfg.to_str().unwrap()], b"");
        assert!(out.status.success(), "{}", support::text(&out.stderr));
        support::text(&out.stdout)
    };
    let mut replays = 0;
    while !writer.is_finished() {
        let cfg = replay_cfg.clone();
        tokio::task::spawn_blocking(move || replay(cfg))
            .await
            .unwrap();
        replays += 1;
    }
    writer.join().unwrap();
    assert_eq!(
        tokio::task::spawn_blocking(move || daemon.wait().unwrap())
            .await
            .unwrap()
            .code(),
        Some(0)
    );
    // Before the last replay: delivered and kept are disjoint and cover all.
    let delivered: Vec<usize> = server.accepted().iter().map(|a| seq_of(&a.body)).collect();
    let kept: Vec<usize> = read_all(&d.path("dead-letter"))
        .unwrap()
        .iter()
        .map(|e| seq_of(&e.payload))
        .collect();
    let mut all: Vec<usize> = delivered.iter().chain(&kept).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..n).collect::<Vec<_>>(),
        "{replays} replays: {} delivered, {} kept",
        delivered.len(),
        kept.len()
    );
    assert!(
        replays > 2 && !delivered.is_empty(),
        "{replays} replays, {} delivered",
        delivered.len()
    );
    let cfg = replay_cfg.clone();
    tokio::task::spawn_blocking(move || replay(cfg))
        .await
        .unwrap();
    assert!(read_all(&d.path("dead-letter")).unwrap().is_empty());
    let mut delivered: Vec<usize> = server.accepted().iter().map(|a| seq_of(&a.body)).collect();
    delivered.sort_unstable();
    assert_eq!(delivered, (0..n).collect::<Vec<_>>());
    server.stop();
}

/// A store whose last entry was cut mid-write and with a corrupt entry in
/// the middle: `ls` and `stats` report the bad entry, `replay` delivers the
/// rest, and the next daemon moves the bad entry aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_and_corrupt_store_opens_reports_and_replays_the_rest() {
    let d = support::Dir::new();
    let server = support::mns_dev(support::dev_config()).await;
    let cfg = stdin_config(&d, "c.toml", &server.endpoint(), "oss-events", "");
    let dir = d.path("dead-letter");
    {
        let store = DeadLetterStore::open(&dir).unwrap();
        let batch: Vec<DeadLetter> = (0..5)
            .map(|i| {
                use base64::Engine as _;
                let payload = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{{\"events\":[{{\"responseElements\":{{\"requestId\":\"r-{i}\"}}}}]}}"
                ));
                DeadLetter::delivery("events", "all", "b/k", &payload, 1, "InternalError: x")
            })
            .collect();
        store.append(&batch).unwrap();
    }
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "seg") && std::fs::metadata(p).unwrap().len() > 0
        })
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Damage a byte inside the third entry, and tear a sixth in half (a
    // write cut short: the start of a whole entry).
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"OSEN")
        .map(|(i, _)| i)
        .collect();
    let torn = bytes[starts[0]..starts[0] + 30].to_vec();
    bytes[starts[2] + 40] ^= 0x55;
    bytes.extend_from_slice(&torn);
    std::fs::write(&seg, &bytes).unwrap();

    let run = |args: &[&str]| {
        let mut all = vec!["dead-letter"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-c", cfg.to_str().unwrap()]);
        support::run(&all, b"")
    };
    let ls = support::text(&run(&["ls"]).stdout);
    assert_eq!(
        ls.lines().filter(|l| l.contains("\tdelivery\t")).count(),
        4,
        "{ls}"
    );
    assert_eq!(
        ls.lines().filter(|l| l.contains("\tunreadable\t")).count(),
        1,
        "{ls}"
    );
    assert!(support::text(&run(&["stats"]).stdout).contains("entries: 4\nunreadable: 1\n"));
    let out = run(&["replay"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    assert!(support::text(&out.stdout).contains("replay: 4 delivered, 0 still failing"));
    assert_eq!(server.accepted().len(), 4);
    // The next daemon repairs: the torn tail cut, the bad entry moved aside.
    let out = support::run(&["run", "-c", cfg.to_str().unwrap()], b"");
    let log = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("cut a torn tail"), "{log}");
    assert!(log.contains("moved a corrupt entry aside"), "{log}");
    assert_eq!(std::fs::read_dir(dir.join("corrupt")).unwrap().count(), 1);
    let ls = support::text(&run(&["ls"]).stdout);
    assert!(ls.is_empty(), "{ls}");
    server.stop();
}

/// Retention drops whole old segments past `max_mib` and counts what it
/// dropped in `ossnotify_store_retention_dropped_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_are_counted() {
    let d = support::Dir::new();
    let server = support::mns_dev(support::dev_config()).await;
    let port = support::free_port();
    let extra =
        format!("max_mib = 1\nsegment_mib = 1\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let cfg = stdin_config(&d, "c.toml", &server.endpoint(), "no-such-topic", &extra);
    // 3,000 dead letters of about 1.5 KiB: 4 MiB in 1 MiB segments.
    let input: String = (0..3000).map(|i| record(i, 700)).collect();
    // The topic is missing on purpose: started without the probe.
    let out = support::run(
        &["run", "-c", cfg.to_str().unwrap(), "--no-check-sinks"],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    // The next run opens the store and applies retention; read its metrics
    // while its stdin is still open.
    let mut child = support::run_on_stdin_with(&cfg, &["--no-check-sinks"]);
    let mut metrics = String::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        metrics = support::http_get(port, "/metrics");
        if metrics.contains("ossnotify_store_retention_dropped_total") {
            break;
        }
    }
    drop(child.stdin.take());
    child.wait().unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ossnotify_store_retention_dropped_total{store=\"dead-letter\"} ")
        })
        .unwrap_or_else(|| panic!("no retention count in:\n{metrics}"))
        .parse()
        .unwrap();
    let kept = read_all(&d.path("dead-letter")).unwrap().len() as u64;
    assert!(dropped > 0, "{metrics}");
    assert_eq!(dropped + kept, 3000);
    server.stop();
}

/// `dead-letter show` decodes payloads; `purge` takes out only what its
/// filters select, and refuses to purge everything without `--all`.
#[test]
fn show_and_purge_follow_their_filters() {
    use base64::Engine as _;
    let d = support::Dir::new();
    let cfg = stdin_config(&d, "c.toml", "http://127.0.0.1:9", "oss-events", "");
    {
        let store = DeadLetterStore::open(&d.path("dead-letter")).unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .encode(r#"{"events":[{"eventName":"ObjectCreated:PutObject"}]}"#);
        let mut other =
            DeadLetter::delivery("other", "r2", "b/k2", "plain text", 1, "HTTP 400: bad");
        other.time_ms = 1_000;
        store
            .append(&[
                DeadLetter::delivery("events", "all", "b/k1", &payload, 8, "InternalError: x"),
                other,
                DeadLetter::invalid_record("{not json", "not valid JSON", "<stdin>:3"),
            ])
            .unwrap();
    }
    let run = |args: &[&str]| {
        let mut all = vec!["dead-letter"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-c", cfg.to_str().unwrap()]);
        support::run(&all, b"")
    };
    let shown = support::text(&run(&["show", "--sink", "events"]).stdout);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        v["payload"]["events"][0]["eventName"], "ObjectCreated:PutObject",
        "{shown}"
    );
    assert_eq!(v["rule_id"], "all");
    // Entries written before 1970-01-01T00:00:02Z: only `other`.
    let old = support::text(&run(&["ls", "--until", "2000"]).stdout);
    assert_eq!(old.lines().count(), 2, "{old}");
    assert!(old.starts_with("ID\tTIME\tKIND\tSINK\tRULE\tKEY\tATTEMPTS\tERROR\n"));
    assert!(old.contains("\tother\tr2\tb/k2\t1\tHTTP 400: bad"), "{old}");
    let out = run(&["purge"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(support::text(&out.stderr).contains("--all"));
    let out = run(&["purge", "--kind", "invalid_record"]);
    assert_eq!(support::text(&out.stdout), "purge: 1 entries taken out\n");
    let left: Vec<String> = read_all(&d.path("dead-letter"))
        .unwrap()
        .into_iter()
        .map(|e| e.sink)
        .collect();
    assert_eq!(left, vec!["events", "other"]);
    let stats = support::text(&run(&["stats"]).stdout);
    assert!(stats.starts_with("entries: 2\nunreadable: 0\n"), "{stats}");
    assert!(stats.contains("         1  InternalError\n"), "{stats}");
    let out = run(&["purge", "--all"]);
    assert_eq!(support::text(&out.stdout), "purge: 2 entries taken out\n");
    assert!(read_all(&d.path("dead-letter")).unwrap().is_empty());
}
