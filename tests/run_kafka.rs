//! `ossnotify run` with the Kafka source, against the real test broker
//! (tansu) and mns-dev: everything `match` predicts arrives; SIGTERM drains
//! and exits 0; the committed offsets reach the end of every partition;
//! invalid records are dead-lettered with topic/partition/offset and line.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ossnotify_mns_dev::{DevConfig, DevServer};

const COPIES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_mns_with_commits_and_sigterm() {
    let d = support::Dir::new();
    // The corpus: the demo logs, COPIES times, 1 to 3 records per message.
    let demo = std::fs::read_to_string(support::repo("configs/demo-oplogs.ndjson")).unwrap();
    let lines: Vec<&str> = demo.lines().collect();
    let mut payloads = Vec::new();
    for copy in 0..COPIES {
        let mut i = 0;
        while i < lines.len() {
            let take = 1 + (copy + i) % 3;
            payloads.push(lines[i..(i + take).min(lines.len())].join("\n"));
            i += take;
        }
    }
    support::broker::create_topic("oplog-e2e", 3);
    support::broker::produce("oplog-e2e", &payloads);
    let corpus = d.write("corpus.ndjson", &(payloads.join("\n") + "\n"));
    let server = support::mns_dev(support::dev_config()).await;
    let metrics_port = support::free_port();
    let cfg = kafka_config(
        &d,
        "oplog-e2e",
        "ossnotify-e2e",
        &server.endpoint(),
        "base64",
    );
    with_metrics(&cfg, metrics_port);
    let want = support::predicted(&cfg, &corpus);
    let expected: usize = want.values().sum();
    assert_eq!(expected, 7 * COPIES);

    let child = run(&cfg);
    // A group join on tansu can take ~25 s.
    wait_for(&server, &want, 120).await;
    // Let the tracker commit and publish, then look at the endpoints.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let health = support::http_get(metrics_port, "/health");
    assert!(
        health.starts_with("HTTP/1.0 200") && health.ends_with("{\"status\":\"ok\"}\n"),
        "{health}"
    );
    let ready = support::http_get(metrics_port, "/ready");
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    let m = support::http_get(metrics_port, "/metrics");
    for want in [
        format!("ossnotify_messages_total{{sink=\"console\",outcome=\"delivered\"}} {expected}"),
        format!(
            "ossnotify_records_total{{outcome=\"invalid\"}} {}",
            2 * COPIES
        ),
        "ossnotify_pending_messages 0".to_owned(),
        "ossnotify_sink_delivery_seconds_count{sink=\"console\"}".to_owned(),
        "ossnotify_committed_offset{topic=\"oplog-e2e\",partition=\"0\"}".to_owned(),
        "ossnotify_reloads_total{result=\"refused\"} 0".to_owned(),
        "ossnotify_queue_depth{queue=\"workers\"} 0".to_owned(),
        "ossnotify_queue_depth{queue=\"sink:console\"} 0".to_owned(),
        "ossnotify_consumer_lag{topic=\"oplog-e2e\",partition=\"0\"}".to_owned(),
    ] {
        assert!(m.contains(&want), "missing {want:?} in:\n{m}");
    }
    assert!(!m.contains("rule"), "no per-rule series");

    let stopped = Instant::now();
    let (code, log) = stop(child).await;
    assert_eq!(code, Some(0), "{log}");
    // The drain ends by itself, long before its deadline.
    assert!(!log.contains("drain deadline"), "{log}");
    let drain = stopped.elapsed();
    assert!(drain < Duration::from_secs(20), "drain took {drain:?}");
    assert!(
        log.contains(&format!("messages: {expected} delivered")),
        "{log}"
    );
    // Exactly the predicted messages (no restart here, so no duplicates).
    assert_eq!(received(&server), want);
    // Committed offsets reach the end of every partition: offsets start
    // at 0 and are contiguous, so the committed next-offsets add up to
    // every message produced exactly when everything is committed.
    assert_eq!(
        committed_total("ossnotify-e2e", "oplog-e2e") as usize,
        payloads.len()
    );

    // Invalid records: dead-lettered with their coordinates.
    let invalid: Vec<_> = ossnotify_sinks::dead_letter::read_all(&d.path("dead-letter"))
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == ossnotify_sinks::DeadLetterKind::InvalidRecord)
        .collect();
    assert_eq!(invalid.len(), 2 * COPIES);
    assert!(
        invalid
            .iter()
            .all(|e| e.source.starts_with("oplog-e2e/") && e.source.contains(" line ")),
        "{:?}",
        invalid[0]
    );
    server.stop();
}

/// The tests' config: `topic` read by `group` into one `mns_queue` sink
/// (`console`, as the demo rules name it) at `endpoint`, sending
/// `encoding`; kill tests' session settings.
fn kafka_config(
    d: &support::Dir,
    topic: &str,
    group: &str,
    endpoint: &str,
    encoding: &str,
) -> std::path::PathBuf {
    d.write(
        "kafka.toml",
        &format!(
            r#"rules_dir = "{rules}"

{source}
[pipeline]
workers = 2
queue_capacity = 8
drain_timeout_ms = 600000

[dead_letter]
store = "disk"
path = "{dl}"

[backlog]
store = "disk"

[sinks.console]
type = "mns_queue"
endpoint = "{endpoint}"
queue = "oss-events"
encoding = "{encoding}"
access_key_id = "AK"
access_key_secret = "SK"
batch = {{ max_messages = 4 }}
request = {{ max_in_flight = 2 }}
[sinks.console.retry]
max_attempts = 1000
initial_backoff_ms = 20
max_backoff_ms = 200
"#,
            rules = support::repo("configs/rules.d").display(),
            source = support::kafka_source(
                support::broker::brokers(),
                topic,
                group,
                "key_encoding = \"url\"",
                "\"statistics.interval.ms\" = \"500\"",
            ),
            dl = d.path("dead-letter").display(),
        ),
    )
}

/// Adds `[metrics] listen` on `port` to the config at `cfg`.
fn with_metrics(cfg: &std::path::Path, port: u16) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text.push_str(&format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(cfg, text).unwrap();
}

/// Produces the demo logs `copies` times (one record per message) to a new
/// topic; returns (messages produced, config path, expected), the sink
/// sending in `encoding`.
fn setup(
    d: &support::Dir,
    topic: &str,
    copies: usize,
    endpoint: &str,
    group: &str,
    encoding: &str,
) -> (usize, std::path::PathBuf, BTreeMap<String, usize>) {
    let demo = std::fs::read_to_string(support::repo("configs/demo-oplogs.ndjson")).unwrap();
    let payloads: Vec<String> = (0..copies)
        .flat_map(|_| demo.lines().map(str::to_owned))
        .collect();
    support::broker::create_topic(topic, 3);
    support::broker::produce(topic, &payloads);
    let corpus = d.write("corpus.ndjson", &(payloads.join("\n") + "\n"));
    let cfg = kafka_config(d, topic, group, endpoint, encoding);
    let want = support::predicted(&cfg, &corpus);
    (payloads.len(), cfg, want)
}

fn received(server: &DevServer) -> BTreeMap<String, usize> {
    support::counts(server.accepted().into_iter().map(|a| {
        if a.body.starts_with('{') {
            let ce: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            return serde_json::json!({ "events": [ce["data"]] }).to_string();
        }
        let json = base64::engine::general_purpose::STANDARD
            .decode(&a.body)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&json)
            .unwrap()
            .to_string()
    }))
}

/// Each CloudEvent that arrived, by notification: the ids it came with.
fn cloudevent_ids(server: &DevServer) -> BTreeMap<String, BTreeSet<String>> {
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in server.accepted() {
        let ce: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        ids.entry(ce["data"].to_string())
            .or_default()
            .insert(ce["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Every wanted message arrived at least as often as wanted.
fn covers(got: &BTreeMap<String, usize>, want: &BTreeMap<String, usize>) -> bool {
    want.iter()
        .all(|(m, n)| got.get(m).copied().unwrap_or(0) >= *n)
}

fn committed_total(group: &str, topic: &str) -> i64 {
    support::committed(&support::group_reader(group), topic, 3)
        .values()
        .sum()
}

async fn mns(latency_ms: u64, fail_first_s: u64) -> DevServer {
    support::mns_dev(DevConfig {
        latency: Duration::from_millis(latency_ms),
        fail_first: Duration::from_secs(fail_first_s),
        ..support::dev_config()
    })
    .await
}

async fn wait_for(server: &DevServer, want: &BTreeMap<String, usize>, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !covers(&received(server), want) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM, and its exit code and log once it has drained.
async fn stop(member: support::Member) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || member.signal("-TERM"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_loses_nothing() {
    let d = support::Dir::new();
    // Slow answers, so the kill lands mid-stream.
    let server = mns(15, 0).await;
    let (n, cfg, want) = setup(
        &d,
        "oplog-kill",
        30,
        &server.endpoint(),
        "ossnotify-kill",
        "cloudevents",
    );
    let total: usize = want.values().sum();
    let first = run(&cfg);
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.accepted().len() < total / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.accepted().len() >= total / 3,
        "the first run made no progress"
    );
    first.signal("-KILL");
    let at_kill = server.accepted().len();
    assert!(
        at_kill < total,
        "killed too late to test anything: {at_kill}/{total}"
    );
    // Committed offsets never pass an unacknowledged message: what was
    // committed at the kill is at most what had arrived.
    let committed_at_kill = committed_total("ossnotify-kill", "oplog-kill");
    assert!((committed_at_kill as usize) <= n);

    // The second run re-reads the uncommitted tail (tansu holds the dead
    // member's partitions until max.poll.interval.ms).
    let second = run(&cfg);
    wait_for(&server, &want, 180).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, err) = stop(second).await;
    assert_eq!(code, Some(0), "{err}");
    let got = received(&server);
    assert!(
        covers(&got, &want),
        "lost messages after kill -9: got {} of {total}",
        got.values().sum::<usize>()
    );
    assert_eq!(committed_total("ossnotify-kill", "oplog-kill") as usize, n);
    // The redelivered messages carry the ids they had before the kill, so
    // a consumer deduplicates them: one id per notification (the corpus
    // repeats the same records, which rightly share their ids too).
    let ids = cloudevent_ids(&server);
    assert_eq!(ids.len(), want.len());
    let unstable: Vec<_> = ids.iter().filter(|(_, i)| i.len() != 1).collect();
    assert!(
        unstable.is_empty(),
        "ids changed on redelivery: {unstable:?}"
    );
    let distinct: BTreeSet<&String> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), want.len(), "two notifications share an id");
    eprintln!(
        "kill -9: {} arrivals for {total} messages, {} distinct ids",
        server.accepted().len(),
        distinct.len()
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_down_then_back_loses_nothing_and_pauses() {
    let d = support::Dir::new();
    // mns-dev answers 503 to everything for the first 8 s.
    let server = mns(0, 8).await;
    // More records than the bounded queues hold, so the source must pause.
    let (n, cfg, want) = setup(
        &d,
        "oplog-down",
        250,
        &server.endpoint(),
        "ossnotify-down",
        "base64",
    );
    let metrics_port = support::free_port();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    // Without isolation: the sink's retries hold its queue, and the
    // consumer pauses (tests/isolation.rs covers the breaker and backlog).
    text.push_str(&format!(
        "\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n[sinks.console.breaker]\nenabled = false\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    let child = run(&cfg);
    let pid = child.child.id();
    // While the sink is down, memory stays bounded.
    let mut peak_kib = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(7) {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(v) = status.lines().find(|l| l.starts_with("VmRSS:")) {
                peak_kib = peak_kib.max(v.split_whitespace().nth(1).unwrap().parse().unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        peak_kib < 200 * 1024,
        "RSS reached {peak_kib} KiB while the sink was down"
    );
    wait_for(&server, &want, 180).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every 503 was a retry, counted.
    let m = support::http_get(metrics_port, "/metrics");
    let retries: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("ossnotify_sink_retries_total{sink=\"console\"} "))
        .unwrap_or_else(|| panic!("no retry count in:\n{m}"))
        .parse()
        .unwrap();
    assert!(retries >= 10.0, "{retries} retries");
    let (code, err) = stop(child).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("workers are full: pausing consumption"),
        "{err}"
    );
    assert!(covers(&received(&server), &want));
    assert_eq!(committed_total("ossnotify-down", "oplog-down") as usize, n);
    server.stop();
}

fn produce_demo(topic: &str) {
    let demo = std::fs::read_to_string(support::repo("configs/demo-oplogs.ndjson")).unwrap();
    let lines: Vec<String> = demo.lines().map(str::to_owned).collect();
    support::broker::produce(topic, &lines);
}

/// One step of the reload test: with a config text, writes it and gives the
/// watcher time to reload it; then produces the demo logs again, waits until
/// mns-dev holds `total` messages, and returns the rule of each message.
async fn reload_step(
    d: &support::Dir,
    server: &DevServer,
    config: Option<&str>,
    total: usize,
    secs: u64,
) -> Vec<String> {
    if let Some(text) = config {
        d.write("reload.toml", text);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    produce_demo("oplog-reload");
    wait_count(server, total, secs).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server
        .accepted()
        .iter()
        .map(|a| {
            let json = base64::engine::general_purpose::STANDARD
                .decode(&a.body)
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            v["events"][0]["oss"]["ruleId"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn wait_count(server: &DevServer, n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while server.accepted().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_takes_effect_and_bad_edits_are_refused() {
    let d = support::Dir::new();
    let server = mns(0, 0).await;
    support::broker::create_topic("oplog-reload", 1);
    let base = format!(
        "{}[dead_letter]\nstore = \"disk\"\npath = \"{}\"\n[backlog]\nstore = \"disk\"\n[sinks.console]\ntype = \"mns_queue\"\nendpoint = \"{}\"\nqueue = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\n",
        support::kafka_source(
            support::broker::brokers(),
            "oplog-reload",
            "ossnotify-reload",
            "key_encoding = \"url\"",
            "",
        ),
        d.path("dead-letter").display(),
        server.endpoint()
    );
    let uploads = "[[rules]]\nid = \"photo-uploads\"\nbucket = \"photos-shenzhen\"\nevents = [\"ObjectCreated:*\"]\nresources = [\"uploads/*.jpg\", \"uploads/*.png\"]\nsinks = [\"console\"]\n";
    let logs = "[[rules]]\nid = \"log-writes\"\nbucket = \"app-logs-hk\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"console\"]\n";
    let cfg = d.write("reload.toml", &format!("{base}{uploads}"));
    let child = run(&cfg);

    // 1. One rule: its two uploads (the first step waits for the group join).
    let seen = reload_step(&d, &server, None, 2, 120).await;
    assert_eq!(seen, vec!["photo-uploads"; 2]);

    // 2. Edit the file: a second rule, no restart.
    let config = format!("{base}{uploads}{logs}");
    let seen = reload_step(&d, &server, Some(&config), 5, 60).await;
    let log_writes = |seen: &[String]| seen.iter().filter(|r| *r == "log-writes").count();
    assert_eq!((seen.len(), log_writes(&seen)), (5, 1), "{seen:?}");

    // 3. A broken edit is refused; the running rules keep working.
    let config = format!("{base}{uploads}{logs}[[rules]]\nid = \"bad\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nresources = [\"a*b*\"]\nsinks = [\"console\"]\n");
    let seen = reload_step(&d, &server, Some(&config), 8, 60).await;
    assert_eq!((seen.len(), log_writes(&seen)), (8, 2), "{seen:?}");

    // 4. A new sink, and the log rule moved to it, without a restart: the
    // MNS sink keeps running (its table did not change).
    let archive = d.path("archive.ndjson");
    let moved = logs.replace(
        "sinks = [\"console\"]",
        &format!(
            "sinks = [\"archive\"]\n[sinks.archive]\ntype = \"file\"\npath = \"{}\"\nencoding = \"json\"\n",
            archive.display()
        ),
    );
    let config = format!("{base}{uploads}{moved}");
    let seen = reload_step(&d, &server, Some(&config), 10, 60).await;
    let t0 = Instant::now();
    let archived = loop {
        let text = std::fs::read_to_string(&archive).unwrap_or_default();
        if text.lines().count() >= 1 || t0.elapsed() > Duration::from_secs(30) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert_eq!(
        seen[8..],
        ["photo-uploads", "photo-uploads"],
        "the MNS sink gets only the photo rule now"
    );
    let lines: Vec<serde_json::Value> = archived
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{archived}");
    assert_eq!(lines[0]["events"][0]["oss"]["ruleId"], "log-writes");

    let (code, err) = stop(child).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("reloaded"), "{err}");
    assert!(
        err.contains("reload refused, the running rules and sinks stay")
            && err.contains("more than one '*' in \"a*b*\""),
        "{err}"
    );
    assert!(!err.contains("sink changed"), "{err}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_in_one_group_share_the_partitions() {
    let d = support::Dir::new();
    let server = mns(0, 0).await;
    let (n, cfg, want) = setup(
        &d,
        "oplog-scale",
        100,
        &server.endpoint(),
        "ossnotify-scale",
        "base64",
    );
    let a = run(&cfg);
    let b = run(&cfg);
    wait_for(&server, &want, 240).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code_a, err_a) = stop(a).await;
    let (code_b, err_b) = stop(b).await;
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{err_a}\n{err_b}");
    assert!(
        covers(&received(&server), &want),
        "together they deliver everything"
    );
    // Each took part: both were assigned partitions and both read records.
    let records = |err: &str| -> u64 {
        err.lines()
            .find_map(|l| l.strip_prefix("run: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        err_a.contains("partitions assigned") && err_b.contains("partitions assigned"),
        "{err_a}\n{err_b}"
    );
    assert!(
        records(&err_a) > 0 && records(&err_b) > 0,
        "a: {}, b: {}",
        records(&err_a),
        records(&err_b)
    );
    assert!((records(&err_a) + records(&err_b)) as usize >= n);
    assert_eq!(
        committed_total("ossnotify-scale", "oplog-scale") as usize,
        n
    );
    server.stop();
}

/// `ossnotify run -c CONFIG`, its log in a file beside the config.
fn run(cfg: &std::path::Path) -> support::Member {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    support::Member::start(cfg, cfg.with_file_name(format!("run-{n}.log")), "info")
}

/// `ossnotify tap` against a daemon consuming from tansu: a filtered tap
/// sees exactly what `match` predicts for its filters, `--limit` ends a
/// tap, and a tap that never reads loses messages, is told how many, and
/// does not slow the daemon, which delivers everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_shows_a_running_daemons_messages_and_never_slows_it() {
    let d = support::Dir::new();
    let server = support::mns_dev(DevConfig {
        keep: usize::MAX,
        keep_bytes: usize::MAX,
        ..support::dev_config()
    })
    .await;
    let (_, cfg, want) = setup(
        &d,
        "oplog-tap",
        2000,
        &server.endpoint(),
        "ossnotify-tap",
        "base64",
    );
    let total: usize = want.values().sum();
    let port = support::free_port();
    with_metrics(&cfg, port);
    let corpus = d.path("corpus.ndjson");
    let predicted = support::run(
        &[
            "match",
            "-c",
            cfg.to_str().unwrap(),
            corpus.to_str().unwrap(),
        ],
        b"",
    );
    let uploads: Vec<serde_json::Value> = support::text(&predicted.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["ruleId"] == "photo-uploads")
        .map(|v| v["message"].clone())
        .collect();
    assert!(!uploads.is_empty());

    let daemon = run(&cfg);
    let deadline = Instant::now() + Duration::from_secs(30);
    while support::http_get(port, "/health").is_empty() {
        assert!(Instant::now() < deadline, "no metrics server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Attached before the group join ends, so they see every message.
    let url = format!("http://127.0.0.1:{port}");
    let tap = |args: &[&str]| {
        support::bin()
            .args(["tap", "--url", &url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let filtered = tap(&[
        "--rule",
        "photo-uploads",
        "--event",
        "ObjectCreated:*",
        "--sink",
        "console",
        "--full",
        "--limit",
        &uploads.len().to_string(),
    ]);
    // Read as it goes (a full pipe would stall the tap, not the daemon).
    let filtered_pid = filtered.id();
    let mut filtered = tokio::task::spawn_blocking(move || filtered.wait_with_output().unwrap());
    let first_five = tap(&["--limit", "5"]);
    let mut stalled = small_window_connect(port);
    std::io::Write::write_all(&mut stalled, b"GET /tap?full=1 HTTP/1.0\r\n\r\n").unwrap();
    // Taps attach in the daemon's runtime: wait until it counts them.
    tokio::time::sleep(Duration::from_millis(500)).await;

    wait_for(&server, &want, 180).await;
    assert!(
        covers(&received(&server), &want),
        "the daemon delivered {} of {total}",
        server.accepted().len()
    );

    // It ends by itself at its limit (unless it lost messages: then it is
    // stopped, and the count below fails).
    let out = match tokio::time::timeout(Duration::from_secs(20), &mut filtered).await {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &filtered_pid.to_string()])
                .status();
            filtered.await.unwrap()
        }
    };
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let lines: Vec<String> = support::text(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), uploads.len());
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["rule"], "photo-uploads", "{l}");
        assert_eq!(v["sinks"], serde_json::json!(["console"]), "{l}");
        assert!(
            v["event"].as_str().unwrap().starts_with("ObjectCreated:"),
            "{l}"
        );
        assert_eq!(v["bucket"], "photos-shenzhen", "{l}");
        assert!(v["key"].as_str().unwrap().starts_with("uploads/"), "{l}");
        assert!(uploads.contains(&v["message"]), "{l}");
    }
    let out = tokio::task::spawn_blocking(move || first_five.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    assert_eq!(support::text(&out.stdout).lines().count(), 5);

    // The stalled tap: what it reads now, plus what it was told it lost,
    // is every message.
    let (messages, dropped) = read_tap(stalled);
    assert!(
        dropped > 0,
        "the stalled tap lost nothing: {messages} messages"
    );
    assert_eq!(messages + dropped, total);
    eprintln!("stalled tap: {messages} messages read, {dropped} dropped, of {total}");
    // A tap with no limit when the daemon stops: it says so and fails.
    let endless = tap(&[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, err) = stop(daemon).await;
    assert_eq!(code, Some(0), "{err}");
    let out = tokio::task::spawn_blocking(move || endless.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", support::text(&out.stderr));
    assert!(
        support::text(&out.stderr)
            .contains("ended the stream after 0 messages: the daemon stopped"),
        "{}",
        support::text(&out.stderr)
    );
    server.stop();
}

/// A connection to loopback `port` with a 4 KiB receive buffer, set before
/// connecting (Linux sizes the advertised window from it; loopback's
/// autotuning would otherwise buffer megabytes): a client that stops
/// reading stops the server's writes after a few KiB.
fn small_window_connect(port: u16) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: libc calls on a socket this function creates and owns: the
    // pointers passed point to live locals of the stated sizes, the fd is
    // checked, and it is handed once to `TcpStream`, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let size: libc::c_int = 4096;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        std::net::TcpStream::from_raw_fd(fd)
    }
}

/// Reads a raw `/tap` answer until it pauses for 1.5 s: (messages, the
/// sum of the `{"dropped":N}` notices).
fn read_tap(mut stream: std::net::TcpStream) -> (usize, usize) {
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut body = Vec::new();
    let mut buf = [0u8; 1 << 16];
    while let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let body = support::text(&body);
    let (mut messages, mut dropped) = (0, 0);
    for l in body.lines().skip_while(|l| !l.is_empty()).skip(1) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        match v["dropped"].as_u64() {
            Some(n) => dropped += n as usize,
            None => messages += 1,
        }
    }
    (messages, dropped)
}
