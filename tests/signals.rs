//! Signals on a real `ossnotify run` reading stdin: SIGTERM ends a run
//! whose input is idle (`tail -f log | ossnotify run`), after delivering
//! what had arrived, with exit 0; a second signal exits at once (exit 2)
//! even while the drain waits on a sink that does not answer; SIGHUP
//! reloads the config.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

const RECORD: &str = r#"{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"b","object":"k","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r1","http_status":200}"#;

fn config(d: &support::Dir, sink: &str) -> std::path::PathBuf {
    d.write(
        "stdin.toml",
        &format!(
            r#"[source]
type = "stdin"

[pipeline]
drain_timeout_ms = 60000

[dead_letter]
path = "{dl}"

{sink}

[[rules]]
id = "r"
bucket = "b"
events = ["ObjectCreated:PutObject"]
sinks = ["s"]
"#,
            dl = d.path("dl").display()
        ),
    )
}

/// A stdin run into a file sink: (config, the sink's file).
fn file_sink_config(d: &support::Dir) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = d.path("out.ndjson");
    let sink = format!("[sinks.s]\ntype = \"file\"\npath = \"{}\"", out.display());
    (config(d, &sink), out)
}

/// The run's dead letters, as JSON.
fn dead_letters(d: &support::Dir) -> Vec<serde_json::Value> {
    ossnotify_sinks::dead_letter::read_all(&d.path("dl"))
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

fn signal(pid: u32, sig: &str) {
    assert!(std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_ends_a_run_on_an_idle_stdin() {
    let d = support::Dir::new();
    let (cfg, out) = file_sink_config(&d);
    let mut child = support::run_on_stdin(&cfg);
    // Two lines, then nothing: the input stays open and idle.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{RECORD}\n{RECORD}").unwrap();
    stdin.flush().unwrap();
    // They are delivered without waiting for a full batch.
    assert_eq!(
        lines_within(&out, 2, Duration::from_secs(20)),
        2,
        "the two records were held back"
    );
    signal(child.id(), "-TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    drop(stdin);
}

/// Lines in the file sink's output, waiting up to `within` for `want`.
fn lines_within(out: &std::path::Path, want: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .count();
        if n >= want || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGHUP reloads the config even when the file's time says nothing
/// changed: a rule edited behind the watcher's back takes effect only
/// after the signal.
#[test]
fn sighup_reloads_the_config() {
    let d = support::Dir::new();
    let (cfg, out) = file_sink_config(&d);
    let mut child = support::run_on_stdin(&cfg);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{RECORD}").unwrap();
    stdin.flush().unwrap();
    assert_eq!(lines_within(&out, 1, Duration::from_secs(20)), 1);
    // The rule now watches bucket "c"; the file keeps its old time.
    let mtime = std::fs::metadata(&cfg).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("bucket = \"b\"", "bucket = \"c\"")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&cfg)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let in_c = RECORD.replace("\"bucket\":\"b\"", "\"bucket\":\"c\"");
    std::thread::sleep(Duration::from_secs(1));
    writeln!(stdin, "{in_c}").unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        lines_within(&out, 2, Duration::from_secs(2)),
        1,
        "reloaded without a signal"
    );
    signal(child.id(), "-HUP");
    std::thread::sleep(Duration::from_secs(1));
    writeln!(stdin, "{in_c}").unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        lines_within(&out, 2, Duration::from_secs(20)),
        2,
        "SIGHUP did not reload the rules"
    );
    signal(child.id(), "-TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    drop(stdin);
}

#[test]
fn a_second_signal_exits_at_once() {
    let d = support::Dir::new();
    // A sink that never answers: nothing listens there, and retries last.
    let port = support::free_port();
    let cfg = config(
        &d,
        &format!(
            "[sinks.s]\ntype = \"http\"\nurl = \"http://127.0.0.1:{port}/hook\"\n[sinks.s.retry]\nmax_attempts = 1000\ninitial_backoff_ms = 1000\nmax_backoff_ms = 1000"
        ),
    );
    let mut child = support::run_on_stdin(&cfg);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{RECORD}").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    signal(child.id(), "-TERM");
    // The drain waits for the sink (up to 60 s)…
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait().unwrap().is_none(), "it did not drain");
    // …until a second signal.
    let t = Instant::now();
    signal(child.id(), "-TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(5)), Some(2));
    assert!(t.elapsed() < Duration::from_secs(3));
    drop(stdin);
}

/// A line over the 16 MiB record limit on stdin is dead-lettered with its
/// line and size, and never held whole: the process's peak RSS stays far
/// below the line's size. The records around it are delivered.
#[test]
fn an_oversized_line_is_dead_lettered_without_being_read_whole() {
    let d = support::Dir::new();
    let (cfg, out) = file_sink_config(&d);
    let mut child = support::run_on_stdin(&cfg);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let huge = 256usize << 20;
    let writer = std::thread::spawn(move || {
        writeln!(stdin, "{RECORD}").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..huge >> 20 {
            stdin.write_all(&chunk).unwrap();
        }
        writeln!(stdin).unwrap();
        writeln!(stdin, "{RECORD}").unwrap();
    });
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(v) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            peak_kib = peak_kib.max(v.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        if writer.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)), Some(0));
    assert!(
        peak_kib < 96 * 1024,
        "peak RSS {peak_kib} KiB for a {} MiB line",
        huge >> 20
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
    let entry = dead_letters(&d).remove(0);
    assert_eq!(entry["kind"], "invalid_record");
    assert_eq!(entry["source"], "<stdin>:2");
    assert!(
        entry["error"].as_str().unwrap().starts_with(&format!(
            "record is {huge} bytes, over the limit of 16777216"
        )),
        "{entry}"
    );
    assert_eq!(entry["payload"].as_str().unwrap().len(), 1024);
}

/// A batch delete listing over a million objects (a 15 MiB record, under
/// the record limit) is dead-lettered with the element count instead of
/// expanding to a million messages; the records around it are delivered.
#[test]
fn a_batch_delete_past_the_event_cap_is_dead_lettered() {
    let d = support::Dir::new();
    let (cfg, out) = file_sink_config(&d);
    let mut child = support::run_on_stdin(&cfg);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let n = 1_200_000;
    let writer = std::thread::spawn(move || {
        writeln!(stdin, "{RECORD}").unwrap();
        let mut delete = String::from(
            r#"{"time":0,"operation":"DeleteObjects","bucket":"b","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r2","http_status":200,"objects":["#,
        );
        for i in 0..n {
            delete.push_str(if i == 0 { "" } else { "," });
            delete.push_str(r#"{"key":"k"}"#);
        }
        delete.push_str("]}");
        writeln!(stdin, "{delete}").unwrap();
        writeln!(stdin, "{RECORD}").unwrap();
    });
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() && !writer.is_finished() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(v) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            peak_kib = peak_kib.max(v.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)), Some(0));
    assert!(peak_kib < 128 * 1024, "peak RSS {peak_kib} KiB");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
    let entry = dead_letters(&d).remove(0);
    assert_eq!(entry["kind"], "invalid_record");
    assert_eq!(entry["source"], "<stdin>:2");
    assert_eq!(
        entry["error"],
        format!("field `objects`: has {n} elements; a record expands to at most 10000 events (OSS and S3 delete at most 1000 objects per request)")
    );
}
