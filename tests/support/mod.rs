//! Shared setup for the integration tests: the binary, temp configs, and
//! running commands.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ossnotify"))
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn repo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ossnotify");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temp directory with files written into it.
pub struct Dir {
    pub dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A config's `[source]` for `topic` on `brokers`, read by `group`, with
/// `source_extra` lines in `[source]` and `librdkafka_extra` in
/// `[source.librdkafka]`. tansu holds a killed member's partitions until
/// `max.poll.interval.ms`, so the tests' members shorten it (and their
/// session), as every kill test must.
pub fn kafka_source(
    brokers: &str,
    topic: &str,
    group: &str,
    source_extra: &str,
    librdkafka_extra: &str,
) -> String {
    format!(
        "[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\n{source_extra}\n[source.librdkafka]\n\"session.timeout.ms\" = \"10000\"\n\"max.poll.interval.ms\" = \"30000\"\n{librdkafka_extra}\n"
    )
}

/// How many times each string comes.
pub fn counts(v: impl Iterator<Item = String>) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for s in v {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

/// What `ossnotify match -c CONFIG CORPUS` prints: one
/// `{"ruleId":…,"sinks":[…],"message":…}` per message.
pub fn match_lines(config: &Path, corpus: &Path) -> Vec<serde_json::Value> {
    let out = run(
        &[
            "match",
            "-c",
            config.to_str().unwrap(),
            corpus.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What `ossnotify match -c CONFIG CORPUS` predicts: each message (the
/// notification JSON, compact) and how many times.
pub fn predicted(config: &Path, corpus: &Path) -> std::collections::BTreeMap<String, usize> {
    counts(
        match_lines(config, corpus)
            .iter()
            .map(|v| v["message"].to_string()),
    )
}

/// `ossnotify validate -c` on `config`: (exit code, stdout).
pub fn validate(config: &Path) -> (i32, String) {
    let out = run(&["validate", "-c", config.to_str().unwrap()], b"");
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}
pub mod arrivals;
pub mod broker;
pub mod proxy;
pub mod refusing_broker;

/// A client of consumer group `group` on the test broker that only reads
/// its committed offsets: it never joins the group.
pub fn group_reader(group: &str) -> rdkafka::consumer::BaseConsumer {
    group_reader_on(broker::brokers(), group)
}

/// [`group_reader`] on the cluster at `brokers`.
pub fn group_reader_on(brokers: &str, group: &str) -> rdkafka::consumer::BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap()
}

/// The committed offset of each of `topic`'s partitions `0..partitions`
/// that has one, as `consumer`'s group committed it.
pub fn committed(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, i64> {
    committed_within(
        consumer,
        topic,
        partitions,
        std::time::Duration::from_secs(10),
    )
}

/// [`committed`], waiting up to `timeout` for the broker's answer.
pub fn committed_within(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    partitions: i32,
    timeout: std::time::Duration,
) -> std::collections::BTreeMap<i32, i64> {
    use rdkafka::consumer::Consumer;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer.committed_offsets(tpl, timeout).unwrap();
    c.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The tests' mns-dev settings: key "AK"/"SK", topic and queue "oss-events".
pub fn dev_config() -> ossnotify_mns_dev::DevConfig {
    ossnotify_mns_dev::DevConfig {
        access_key_id: "AK".into(),
        access_key_secret: "SK".into(),
        topics: vec!["oss-events".into()],
        queues: vec!["oss-events".into()],
        ..Default::default()
    }
}

/// Starts an `ossnotify mns-dev` command (`cmd`, its stdout and stderr
/// piped) and waits for its first line: the process and that line
/// (`mns-dev listening on ENDPOINT (…)`).
pub fn start_mns_dev(mut cmd: Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (child, first)
}

/// A loopback `host:port` no one listens on now.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The sum of the committed offsets a pipeline reports on its `/metrics`
/// at `addr` (a plain HTTP GET: a Kafka client polling the group's offsets
/// instead kept a core busy and skewed the harnesses).
pub fn metrics_committed(addr: &str) -> i64 {
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    http_get(port, "/metrics")
        .lines()
        .filter(|l| l.starts_with("ossnotify_committed_offset{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

/// `BIN run -c CONFIG` (this build's, or another to compare against), its
/// log (stderr) into `log`, `RUST_LOG` as given.
pub fn spawn_run_of(bin: &Path, config: &Path, log: &Path, rust_log: &str) -> std::process::Child {
    spawn_run_with(bin, config, log, rust_log, &[])
}

/// [`spawn_run_of`] with more arguments for `run` (`--no-check-sinks`).
pub fn spawn_run_with(
    bin: &Path,
    config: &Path,
    log: &Path,
    rust_log: &str,
    args: &[&str],
) -> std::process::Child {
    Command::new(bin)
        .args(["run", "-c", config.to_str().unwrap()])
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn ossnotify run")
}

/// This build's `ossnotify run -c CONFIG`, its log in `log`.
pub fn spawn_run(config: &Path, log: &Path) -> std::process::Child {
    spawn_run_of(
        Path::new(env!("CARGO_BIN_EXE_ossnotify")),
        config,
        log,
        "info",
    )
}

/// Stops it as an operator would (SIGTERM) and checks it exited cleanly.
pub fn stop_run(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "ossnotify run exited with {status}");
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET on loopback `port`: the whole answer (status,
/// headers, body), empty while nothing listens there.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The buckets of `ossnotify_stage_seconds{stage="STAGE"}` in Prometheus
/// text: (upper bound in seconds, cumulative count), by bound.
pub fn stage_buckets(text: &str, stage: &str) -> Vec<(f64, f64)> {
    let label = format!("stage=\"{stage}\"");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with("ossnotify_stage_seconds_bucket{") && l.contains(&label))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// "p50 ≤ X ms, p99 ≤ Y ms, …" of histogram buckets (sorted, cumulative):
/// the upper bound of the bucket each quantile falls in; `None` without
/// samples.
pub fn bucket_quantiles(buckets: &[(f64, f64)], quantiles: &[(&str, f64)]) -> Option<String> {
    let &(_, total) = buckets.last()?;
    let at = |q: f64| {
        let le = buckets
            .iter()
            .find(|(_, n)| *n >= q * total)
            .map_or(f64::INFINITY, |b| b.0);
        format!("≤ {:.1} ms", le * 1000.0)
    };
    let parts: Vec<String> = quantiles
        .iter()
        .map(|(name, q)| format!("{name} {}", at(*q)))
        .collect();
    Some(format!("{} ({total} samples)", parts.join(", ")))
}

/// One sample's value in Prometheus text (`name{labels}`), or a panic
/// naming it.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in:\n{text}"))
}

/// `ossnotify run -c CONFIG` with its stdin a pipe the test holds (stdout
/// and stderr discarded).
pub fn run_on_stdin(cfg: &Path) -> std::process::Child {
    run_on_stdin_with(cfg, &[])
}

/// [`run_on_stdin`] with more arguments for `run`.
pub fn run_on_stdin_with(cfg: &Path, args: &[&str]) -> std::process::Child {
    bin()
        .args(["run", "-c", cfg.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// mns-dev on a free loopback port.
pub async fn mns_dev(cfg: ossnotify_mns_dev::DevConfig) -> ossnotify_mns_dev::DevServer {
    ossnotify_mns_dev::DevServer::local(cfg).await.unwrap()
}

/// An `ossnotify run -c CONFIG` process whose log (stderr) goes to a file,
/// so that tests can read it while it runs and after it is killed. A test
/// that fails before stopping it does not leave it running.
pub struct Member {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Member {
    /// Starts a member; `RUST_LOG` as given (the default level is info).
    pub fn start(config: &Path, log: PathBuf, rust_log: &str) -> Member {
        Member::start_with(config, log, rust_log, &[])
    }

    /// [`Member::start`] with more arguments for `run`.
    pub fn start_with(config: &Path, log: PathBuf, rust_log: &str, args: &[&str]) -> Member {
        let bin = Path::new(env!("CARGO_BIN_EXE_ossnotify"));
        let child = spawn_run_with(bin, config, &log, rust_log, args);
        Member { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the member has its first partitions (a group join on
    /// tansu can take ~25 s), or fails the test with its log.
    pub fn joined(&self) {
        assert!(
            self.wait_log("partitions assigned", std::time::Duration::from_secs(120)),
            "the member never got partitions:\n{}",
            self.log_text()
        );
    }

    /// Waits (polling) until the log contains `needle`; false on timeout.
    pub fn wait_log(&self, needle: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// Sends `signal` (`-KILL`, `-TERM`) and waits: the exit code, if any.
    pub fn signal(mut self, signal: &str) -> (Option<i32>, String) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} failed");
        let status = self.child.wait().unwrap();
        (status.code(), self.log_text())
    }

    /// Waits for the process to exit by itself, up to `timeout`.
    pub fn wait_exit(mut self, timeout: std::time::Duration) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.code(), self.log_text());
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("did not exit within {timeout:?}:\n{}", self.log_text());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// One request an [`HttpRecorder`] answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Header names lowercased.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
}

/// A webhook receiver on loopback: answers every request 200 and records
/// it (HTTP/1.1, keep-alive, `Content-Length` bodies, as the sinks send).
pub struct HttpRecorder {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl HttpRecorder {
    pub fn start() -> HttpRecorder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let keep = keep.clone();
                std::thread::spawn(move || serve_recorded(conn, &keep));
            }
        });
        HttpRecorder { url, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_recorded(conn: std::net::TcpStream, keep: &std::sync::Mutex<Vec<Recorded>>) {
    use std::io::{BufRead, BufReader, Read};
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = std::collections::BTreeMap::new();
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).unwrap_or(0) == 0 {
                return;
            }
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        keep.lock().unwrap().push(Recorded {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if out
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// The metric names the code exports: every `"ossnotify_…"` string literal
/// under `src/` and `sinks/src/` (each name is one constant, used where it
/// is recorded).
pub fn exported_metrics() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    exported(&repo("src"), &mut names);
    exported(&repo("sinks/src"), &mut names);
    names
}

/// Every `"ossnotify_…"` string literal under `dir`: the metric names the
/// code exports (each is one constant, used where it is recorded).
fn exported(dir: &std::path::Path, out: &mut std::collections::BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            exported(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for part in text.split("\"ossnotify_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if part[name.len()..].starts_with('"') {
                    out.insert(format!("ossnotify_{name}"));
                }
            }
        }
    }
}

/// A field of `/proc/PID/status` counted in KiB (`VmRSS`, `VmHWM`); 0
/// once the process is gone.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A running process's peak RSS (`VmHWM`) in KiB; 0 once it is gone.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

/// A consumer outside any group, assigned partitions `0..partitions` of
/// `topic` from `from`, with the pipeline's fetch sizes and then
/// `settings`: the bare reader the load harnesses measure against.
pub fn bare_consumer(
    group: &str,
    topic: &str,
    partitions: i32,
    from: rdkafka::Offset,
    settings: &[(&str, &str)],
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let mut cc = rdkafka::ClientConfig::new();
    cc.set("bootstrap.servers", broker::brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    for (k, v) in ossnotify::pipeline::FETCH_DEFAULTS.iter().chain(settings) {
        cc.set(*k, *v);
    }
    let consumer: rdkafka::consumer::BaseConsumer = cc.create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, from).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// `cmd.output()`, and the child's peak RSS in KiB: its `VmHWM`, read
/// every 10 ms until it ends (growth in its last 10 ms is missed). Not
/// `wait4`'s `ru_maxrss`: that counts the parent's memory too when the
/// child was started with `vfork`, as `Command` does.
pub fn output_with_peak_rss(cmd: &mut Command) -> (Output, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let readers = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        })
    });
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak = peak.max(peak_rss_kib(child.id()));
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    (
        Output {
            status,
            stdout,
            stderr,
        },
        peak,
    )
}
