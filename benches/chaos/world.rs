//! The chaos harness's world: the members, mns-dev and the broker as it
//! drives them, and what has arrived at mns-dev.

use super::*;

/// The members, mns-dev and the broker, as the harness drives them.
pub(super) struct World {
    pub(super) dir: PathBuf,
    pub(super) broker_dir: PathBuf,
    pub(super) kafka_port: u16,
    pub(super) mns_port: u16,
    pub(super) mns: Option<Child>,
    pub(super) mns_starts: u32,
    pub(super) strategy: String,
    pub(super) members: Vec<Option<Child>>,
    pub(super) starts: u32,
    pub(super) peak_rss_kib: Vec<u64>,
    pub(super) bad_exits: Vec<String>,
}

impl World {
    pub(super) fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    pub(super) fn config(&self, slot: usize) -> PathBuf {
        let path = self.dir.join(format!("member-{slot}.toml"));
        std::fs::write(
            &path,
            format!(
                r#"{source}
[pipeline]
drain_timeout_ms = 20000

[dead_letter]
path = "{dl}"

[sinks.q]
type = "mns_queue"
endpoint = "http://127.0.0.1:{mns}"
queue = "oss-events"
access_key_id = "AK"
access_key_secret = "SK"
request = {{ max_in_flight = 16 }}

[sinks.q.retry]
max_attempts = 12
initial_backoff_ms = 50
max_backoff_ms = 2000

[[rules]]
id = "puts"
bucket = "chaos"
events = ["ObjectCreated:PutObject"]
sinks = ["q"]
"#,
                source = support::kafka_source(
                    &self.brokers(),
                    TOPIC,
                    GROUP,
                    "",
                    &format!("\"partition.assignment.strategy\" = \"{}\"", self.strategy),
                ),
                dl = self.dir.join(format!("dead-letter-{slot}")).display(),
                mns = self.mns_port,
            ),
        )
        .unwrap();
        path
    }

    /// (Re)starts mns-dev with `faults` (extra flags); its record file
    /// keeps growing across restarts.
    pub(super) fn mns(&mut self, faults: &[&str]) {
        if let Some(mut c) = self.mns.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        // The port was just freed: retry the bind for a while.
        for _ in 0..50 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_ossnotify"))
                .args([
                    "mns-dev",
                    "--listen",
                    &format!("127.0.0.1:{}", self.mns_port),
                    "--access-key-id",
                    "AK",
                    "--access-key-secret",
                    "SK",
                    "--queues",
                    "oss-events",
                    "--record",
                    self.dir.join("accepted.ndjson").to_str().unwrap(),
                ])
                .args(faults)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // It prints one line once it listens.
            let mut line = String::new();
            let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
            if line.starts_with("mns-dev listening") {
                self.mns = Some(child);
                self.mns_starts += 1;
                return;
            }
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("mns-dev would not start on port {}", self.mns_port);
    }

    pub(super) fn running(&self) -> Vec<usize> {
        (0..SLOTS).filter(|s| self.members[*s].is_some()).collect()
    }

    pub(super) fn start(&mut self, slot: usize) {
        let cfg = self.config(slot);
        self.starts += 1;
        let log = self.dir.join(format!("member-{slot}-{}.log", self.starts));
        self.members[slot] = Some(support::spawn_run(&cfg, &log));
    }

    pub(super) fn kill(&mut self, slot: usize, signal: &str) {
        if let Some(mut c) = self.members[slot].take() {
            let _ = Command::new("kill")
                .args([signal, &c.id().to_string()])
                .status();
            let status = c.wait().unwrap();
            if signal == "-TERM" && !status.success() {
                self.bad_exits
                    .push(format!("member {slot}: SIGTERM gave {status}"));
            }
        }
    }

    pub(super) fn sample_rss(&mut self) {
        for s in 0..SLOTS {
            if let Some(c) = &self.members[s] {
                let kib = support::status_kib(c.id(), "VmRSS");
                self.peak_rss_kib[s] = self.peak_rss_kib[s].max(kib);
            }
        }
    }
}

/// What has arrived (or was dead-lettered): per request id, the times it
/// arrived. Reads mns-dev's record file from where it stopped last time.
#[derive(Default)]
pub(super) struct Arrivals {
    pub(super) offset: u64,
    pub(super) by_id: HashMap<u64, Vec<u64>>,
}

impl Arrivals {
    pub(super) fn id_of(body_b64: &str) -> Option<u64> {
        let json = base64::engine::general_purpose::STANDARD
            .decode(body_b64)
            .ok()?;
        let text = String::from_utf8(json).ok()?;
        let at = text.find("\"requestId\":\"c-")? + 15;
        text[at..].split('"').next()?.parse().ok()
    }

    pub(super) fn update(&mut self, dir: &Path) {
        let path = dir.join("accepted.ndjson");
        let Ok(mut f) = std::fs::File::open(&path) else {
            return;
        };
        use std::io::Seek;
        let _ = f.seek(std::io::SeekFrom::Start(self.offset));
        let mut r = std::io::BufReader::new(f);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) if !line.ends_with('\n') => {
                    let _ = n; // a line still being written: next time
                    break;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    if let Some(id) = Self::id_of(v["body"].as_str().unwrap_or_default()) {
                        self.by_id
                            .entry(id)
                            .or_default()
                            .push(v["received_ms"].as_u64().unwrap_or(0));
                    }
                }
            }
        }
    }

    /// Dead-lettered deliveries: the members' dead-letter topic (the
    /// default store with a Kafka source), read from its start.
    pub(super) fn dead_lettered(w: &World) -> HashMap<u64, usize> {
        use ossnotify_sinks::kafka_store::{client_config, dead_letters, read};
        let mut out = HashMap::new();
        let cc = client_config(&w.brokers(), &Default::default());
        let topic = format!("{GROUP}.dead-letter");
        let _ = read::read_range(&cc, &topic, "chaos-verdict", |s| {
            if let Some(d) = dead_letters::from_stored(&s) {
                if d.kind == ossnotify_sinks::DeadLetterKind::Delivery {
                    if let Some(id) = Self::id_of(&d.payload) {
                        *out.entry(id).or_insert(0) += 1;
                    }
                }
            }
        });
        out
    }

    /// Messages waiting in the sink's backlog topic: past the backlog
    /// group's commit, so not yet redelivered (missing from mns-dev, they
    /// are undelivered, not lost).
    pub(super) fn waiting_in_backlog(w: &World) -> HashMap<u64, usize> {
        use ossnotify_sinks::kafka_store::{client_config, read};
        let mut out = HashMap::new();
        let cc = client_config(&w.brokers(), &Default::default());
        let group = format!("{GROUP}.backlog");
        let topic = format!("{group}.q");
        let _ = read::read_range(&cc, &topic, &group, |s| {
            if let Some(id) = Self::id_of(&String::from_utf8_lossy(&s.value)) {
                *out.entry(id).or_insert(0) += 1;
            }
        });
        out
    }
}
