//! `ossnotify backfill` against the test broker and mns-dev, with real
//! processes: a new rule's notifications for what the live group had read
//! when the backfill started, and nothing else, beside a live daemon that
//! sends the rest; a backfill killed -9 halfway resumes where it stopped.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ossnotify_mns_dev::DevServer;

/// photos: bucket p, photos/* → q. thumbs (the new rule): bucket p,
/// thumbs/* → q.
fn config(source: &str, endpoint: &str, with_thumbs: bool) -> String {
    let mut c = format!(
        "{source}\n[pipeline]\ncommit_interval_ms = 100\n\n[sinks.q]\ntype = \"mns_queue\"\nendpoint = \"{endpoint}\"\nqueue = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\n\n[[rules]]\nid = \"photos\"\nbucket = \"p\"\nevents = [\"ObjectCreated:*\"]\nresources = [\"photos/*\"]\nsinks = [\"q\"]\n"
    );
    if with_thumbs {
        c.push_str("\n[[rules]]\nid = \"thumbs\"\nbucket = \"p\"\nevents = [\"ObjectCreated:*\"]\nresources = [\"thumbs/*\"]\nsinks = [\"q\"]\n");
    }
    c
}

/// Records `from..to` (request ids `{tag}-{i}`): photos, thumbs and
/// others in turn, operations a few minutes old.
fn records(tag: &str, from: usize, to: usize) -> Vec<String> {
    // Any time within the last hour will do: the window is --since 1h.
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 5 * 60;
    (from..to)
        .map(|i| {
            let key = match i % 3 {
                0 => format!("photos/{i}.jpg"),
                1 => format!("thumbs/{i}.jpg"),
                _ => format!("other/{i}"),
            };
            format!(
                r#"{{"__time__":{time},"operation":"PutObject","bucket":"p","object":"{key}","bucket_location":"oss-cn-hangzhou","owner_id":"1","request_id":"{tag}-{i}","http_status":200,"object_size":10}}"#
            )
        })
        .collect()
}

/// What mns-dev accepted: (rule, request id) → times.
fn arrivals(server: &DevServer) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for a in server.accepted() {
        let json = base64::engine::general_purpose::STANDARD
            .decode(&a.body)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let e = &v["events"][0];
        *m.entry((
            e["oss"]["ruleId"].as_str().unwrap().to_owned(),
            e["responseElements"]["requestId"]
                .as_str()
                .unwrap()
                .to_owned(),
        ))
        .or_insert(0) += 1;
    }
    m
}

/// What `match` says `config` sends for `records`, only `rule`'s if given.
fn expected(
    config: &Path,
    records: &[String],
    rule: Option<&str>,
) -> BTreeMap<(String, String), usize> {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.ndjson");
    std::fs::write(&corpus, records.join("\n") + "\n").unwrap();
    let mut m = BTreeMap::new();
    for v in support::match_lines(config, &corpus) {
        let r = v["ruleId"].as_str().unwrap();
        if rule.is_some_and(|x| x != r) {
            continue;
        }
        let id = v["message"]["events"][0]["responseElements"]["requestId"]
            .as_str()
            .unwrap();
        *m.entry((r.to_owned(), id.to_owned())).or_insert(0) += 1;
    }
    m
}

fn add(into: &mut BTreeMap<(String, String), usize>, from: BTreeMap<(String, String), usize>) {
    for (k, n) in from {
        *into.entry(k).or_insert(0) += n;
    }
}

/// `ossnotify backfill ARGS`, its stderr in `log`.
fn backfill(args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ossnotify"))
        .arg("backfill")
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until what mns-dev accepted stops changing for 2 s.
fn settled(server: &DevServer) -> BTreeMap<(String, String), usize> {
    let mut last = (server.accepted_count(), Instant::now());
    while last.1.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
        let c = server.accepted_count();
        if c != last.0 {
            last = (c, Instant::now());
        }
    }
    arrivals(server)
}

fn text(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

#[test]
fn backfill_sends_a_new_rules_notifications_for_what_the_live_group_had_read() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(DevServer::local(support::dev_config()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("backfill-{}", std::process::id());
    support::broker::create_topic(&topic, 3);
    let source = support::kafka_source(support::broker::brokers(), &topic, &topic, "", "");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&source, &server.endpoint(), false)).unwrap();
    let before_b = dir.path().join("a.toml");
    std::fs::copy(&cfg, &before_b).unwrap();

    // The live daemon, with config A, reads the first records.
    let first = records("c1", 0, 600);
    support::broker::produce(&topic, &first);
    let live = support::Member::start(&cfg, dir.path().join("live.log"), "info");
    live.joined();
    let reader = support::group_reader(&topic);
    wait_for(
        "the live group to commit the first records",
        Duration::from_secs(120),
        || support::committed(&reader, &topic, 3).values().sum::<i64>() >= 600,
    );

    // The rule is added and the daemon reloads; a backfill of it starts
    // (its window ends where the live group had read); then more records.
    std::fs::write(&cfg, config(&source, &server.endpoint(), true)).unwrap();
    assert!(
        live.wait_log("reloaded", Duration::from_secs(30)),
        "{}",
        live.log_text()
    );
    let log = dir.path().join("backfill.log");
    let mut b = backfill(
        &[
            "-c",
            cfg.to_str().unwrap(),
            "--rule",
            "thumbs",
            "--since",
            "1h",
        ],
        &log,
    );
    wait_for("the backfill's window", Duration::from_secs(60), || {
        text(&log).contains("records to read")
    });
    let second = records("c2", 600, 900);
    support::broker::produce(&topic, &second);
    let status = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = b.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the backfill did not end:\n{}",
                text(&log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let said = text(&log);
    assert!(status.success(), "{said}");
    assert!(said.contains("up to 600 records to read"), "{said}");
    assert!(said.contains("600 records read"), "{said}");
    assert!(said.contains("messages of rules thumbs"), "{said}");
    wait_for(
        "the live group to commit everything",
        Duration::from_secs(60),
        || support::committed(&reader, &topic, 3).values().sum::<i64>() >= 900,
    );
    let got = settled(&server);
    let (code, log) = live.signal("-TERM");
    assert_eq!(code, Some(0), "{log}");

    // The first records: photos from the live daemon (config A), thumbs
    // from the backfill only; the rest: everything from the live daemon
    // (config B). Each exactly once: no fault, no duplicate.
    let mut want = expected(&before_b, &first, None);
    add(&mut want, expected(&cfg, &first, Some("thumbs")));
    add(&mut want, expected(&cfg, &second, None));
    assert_eq!(want.keys().filter(|k| k.0 == "thumbs").count(), 300);
    assert_eq!(got, want);
}

#[test]
fn a_backfill_killed_halfway_resumes_where_it_stopped() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(DevServer::local(support::dev_config()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("backfill-kill-{}", std::process::id());
    support::broker::create_topic(&topic, 3);
    // Records spread over the partitions, each kind on each of them.
    let all = records("k", 0, 3000);
    let partition = |i: usize| (i / 3) % 3;
    let mut counts = [0i64; 3];
    for i in 0..all.len() {
        counts[partition(i)] += 1;
    }
    support::broker::produce_each(&topic, &all, |i| support::broker::Shape {
        partition: Some(partition(i) as i32),
        ..Default::default()
    });
    // The live group has read everything (no daemon runs: what arrives is
    // the backfill's).
    {
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", support::broker::brokers())
            .set("group.id", &topic)
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (p, n) in counts.iter().enumerate() {
            tpl.add_partition_offset(&topic, p as i32, rdkafka::Offset::Offset(*n))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    let source = support::kafka_source(support::broker::brokers(), &topic, &topic, "", "");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&source, &server.endpoint(), true)).unwrap();
    let args = [
        "-c",
        cfg.to_str().unwrap(),
        "--rule",
        "thumbs",
        "--since",
        "1h",
        "--max-rate",
        "400",
    ];

    let ours = support::group_reader(&format!("{topic}.backfill.thumbs"));
    let log = dir.path().join("first.log");
    let mut b = backfill(&args, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Its starts are committed first (0 here, tansu's time index giving
    // the partitions' starts): progress is past them.
    while support::committed(&ours, &topic, 3).values().sum::<i64>() <= 600 {
        assert!(
            Instant::now() < deadline,
            "no progress committed: {:?}\n{}",
            support::committed(&ours, &topic, 3),
            text(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.kill().unwrap();
    b.wait().unwrap();
    let at_kill = settled(&server);
    let sent: usize = at_kill.values().sum();
    assert!(
        sent > 0 && sent < 1000,
        "{sent} sent before the kill:\n{}",
        text(&log)
    );

    let log = dir.path().join("second.log");
    let mut b = backfill(&args, &log);
    let status = b.wait().unwrap();
    let said = text(&log);
    assert!(status.success(), "{said}");
    assert!(said.contains("resumed on 3 partitions"), "{said}");
    let got = settled(&server);

    // Every thumbs message at least once, no other rule's; the duplicates
    // are what was in flight at the kill (at 400 records/s, at most a
    // second's worth and a batch).
    let want = expected(&cfg, &all, Some("thumbs"));
    assert_eq!(want.len(), 1000);
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "missing {missing:?}");
    assert!(got.keys().all(|k| k.0 == "thumbs"), "{got:?}");
    let dup: usize = got.values().map(|n| n - 1).sum();
    assert!(dup <= 400 + 256, "{dup} duplicates");

    // Once done, the same command has nothing left to read.
    let log = dir.path().join("third.log");
    let status = backfill(&args, &log).wait().unwrap();
    assert!(status.success());
    assert!(
        text(&log).contains("up to 0 records to read"),
        "{}",
        text(&log)
    );
    assert_eq!(
        settled(&server).values().sum::<usize>(),
        got.values().sum::<usize>()
    );
}
