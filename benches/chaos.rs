//! Chaos harness (a load harness, not criterion): several release
//! `ossnotify run` members in one consumer group read a topic that a steady
//! producer keeps filling, and deliver to mns-dev, while the harness keeps
//! doing random harm: it starts an extra member, stops one (SIGTERM), kills
//! one (-9) and restarts it later, restarts one, makes mns-dev fail every
//! request for a while, answer slowly, or drop connections, and restarts the
//! broker: tansu on S3 storage against a local S3 server
//! (`scripts/durable-broker.sh`, which installs both), since an in-memory
//! broker loses everything when it restarts.
//!
//! At the end it heals everything, waits for the pipeline to catch up,
//! stops the members, reads back every record the topic holds, asks
//! `ossnotify match` what those records must produce, and checks that every
//! such message arrived at mns-dev at least once or sits in a dead-letter
//! store. It reports the faults injected, the messages expected, lost (must
//! be 0), duplicated (count and %, and per fault kind: each extra delivery is
//! charged to the last fault before it), the worst time to recover after a
//! fault (until every message produced before it had arrived), and each
//! member's peak RSS. It exits 1 if anything was lost.
//!
//! ```text
//! OSSNOTIFY_CHAOS_SECONDS=600 OSSNOTIFY_CHAOS_STRATEGY=cooperative-sticky cargo bench --bench chaos
//! ```
//!
//! - `OSSNOTIFY_CHAOS_SECONDS`: how long harm is done (default 120);
//! - `OSSNOTIFY_CHAOS_STRATEGY`: `range` (eager, default) or `cooperative-sticky`;
//! - `OSSNOTIFY_CHAOS_LOAD`: the produce rate as a fraction of the rate one
//!   member sustains on a healthy system, measured first (default 0.5);
//! - `OSSNOTIFY_CHAOS_SEED`: the random harm's seed (default: the time);
//! - `OSSNOTIFY_CHAOS_BROKER`: `durable` (default; restarted among the
//!   faults) or `memory` (the test broker, never restarted).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

const TOPIC: &str = "chaos-oplog";
const GROUP: &str = "chaos";
const PARTITIONS: i32 = 6;
const SLOTS: usize = 3;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Record `seq`: mostly PutObject (one message each), every tenth a
/// GetObject no rule asks for, every fiftieth not JSON (dead-lettered).
fn record(seq: u64) -> String {
    if seq % 50 == 7 {
        return format!("not an operation log {seq}");
    }
    let op = if seq % 10 == 9 {
        "GetObject"
    } else {
        "PutObject"
    };
    format!(
        r#"{{"time":"2026-11-27T10:00:00Z","operation":"{op}","bucket":"chaos","object":"k/{seq}","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"c-{seq}","http_status":200,"object_size":{seq}}}"#
    )
}

fn yields_message(seq: u64) -> bool {
    seq % 50 != 7 && seq % 10 != 9
}

/// A small xorshift: the harm is reproducible from its seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs `scripts/NAME ARGS…` (the test broker's or the durable one's).
fn script(name: &str, args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run scripts/{name}: {e}"));
    assert!(status.success(), "{name} {args:?} failed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Counts produce failures (those records never reached the topic; the
/// final read of the topic is the truth anyway).
#[derive(Clone, Default)]
struct Delivery(Arc<DeliveryCounts>);

#[derive(Default)]
struct DeliveryCounts {
    acked: AtomicU64,
    failed: AtomicU64,
}
impl ClientContext for Delivery {}
impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.0.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The producer thread: `rate` records a second until `stop`; the next
/// sequence number is in `next`.
fn produce(brokers: String, rate: f64, stop: Arc<AtomicBool>, next: Arc<AtomicU64>, d: Delivery) {
    let producer: ThreadedProducer<Delivery> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("message.timeout.ms", "600000")
        .set("linger.ms", "20")
        .create_with_context(d)
        .unwrap();
    let (start, first) = (Instant::now(), next.load(Ordering::SeqCst));
    while !stop.load(Ordering::SeqCst) {
        let seq = next.load(Ordering::SeqCst);
        let due = first + (start.elapsed().as_secs_f64() * rate) as u64;
        if seq >= due {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let payload = record(seq);
        let key = seq.to_string();
        if producer
            .send(
                BaseRecord::<String, String>::to(TOPIC)
                    .key(&key)
                    .payload(&payload),
            )
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        next.store(seq + 1, Ordering::SeqCst);
    }
    let _ = rdkafka::producer::Producer::flush(&producer, Duration::from_secs(600));
}

/// The members, mns-dev and the broker, as the harness drives them.
struct World {
    dir: PathBuf,
    broker_dir: PathBuf,
    kafka_port: u16,
    mns_port: u16,
    mns: Option<Child>,
    mns_starts: u32,
    strategy: String,
    members: Vec<Option<Child>>,
    starts: u32,
    peak_rss_kib: Vec<u64>,
    bad_exits: Vec<String>,
}

impl World {
    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    fn config(&self, slot: usize) -> PathBuf {
        let path = self.dir.join(format!("member-{slot}.toml"));
        std::fs::write(
            &path,
            format!(
                r#"[source]
type = "kafka"
brokers = "{brokers}"
topics = ["{TOPIC}"]
group_id = "{GROUP}"

[source.librdkafka]
"session.timeout.ms" = "10000"
"max.poll.interval.ms" = "30000"
"partition.assignment.strategy" = "{strategy}"

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
max_in_flight = 16

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
                brokers = self.brokers(),
                strategy = self.strategy,
                dl = self.dir.join(format!("dead-letter-{slot}")).display(),
                mns = self.mns_port,
            ),
        )
        .unwrap();
        path
    }

    /// (Re)starts mns-dev with `faults` (extra flags); its record file
    /// keeps growing across restarts.
    fn mns(&mut self, faults: &[&str]) {
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

    fn running(&self) -> Vec<usize> {
        (0..SLOTS).filter(|s| self.members[*s].is_some()).collect()
    }

    fn start(&mut self, slot: usize) {
        let cfg = self.config(slot);
        self.starts += 1;
        let log = self.dir.join(format!("member-{slot}-{}.log", self.starts));
        self.members[slot] = Some(support::spawn_run(&cfg, &log));
    }

    fn kill(&mut self, slot: usize, signal: &str) {
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

    fn sample_rss(&mut self) {
        for s in 0..SLOTS {
            if let Some(c) = &self.members[s] {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", c.id())).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                {
                    self.peak_rss_kib[s] = self.peak_rss_kib[s].max(kib);
                }
            }
        }
    }
}

/// What has arrived (or was dead-lettered): per request id, the times it
/// arrived. Reads mns-dev's record file from where it stopped last time.
#[derive(Default)]
struct Arrivals {
    offset: u64,
    by_id: HashMap<u64, Vec<u64>>,
}

impl Arrivals {
    fn id_of(body_b64: &str) -> Option<u64> {
        let json = base64::engine::general_purpose::STANDARD
            .decode(body_b64)
            .ok()?;
        let text = String::from_utf8(json).ok()?;
        let at = text.find("\"requestId\":\"c-")? + 15;
        text[at..].split('"').next()?.parse().ok()
    }

    fn update(&mut self, dir: &Path) {
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

    /// Dead-lettered deliveries, from every member's store.
    fn dead_lettered(dir: &Path) -> HashMap<u64, usize> {
        let mut out = HashMap::new();
        for s in 0..SLOTS {
            let store = dir.join(format!("dead-letter-{s}"));
            for d in ossnotify_sinks::dead_letter::read_all(&store).unwrap_or_default() {
                if d.kind == ossnotify_sinks::DeadLetterKind::Delivery {
                    if let Some(id) = Self::id_of(&d.payload) {
                        *out.entry(id).or_insert(0) += 1;
                    }
                }
            }
        }
        out
    }
}

struct Fault {
    kind: &'static str,
    at: Instant,
    at_ms: u64,
    /// Records produced before it.
    produced: u64,
    recovered: Option<Duration>,
}

/// The lowest sequence number whose message has not arrived: everything
/// below it that yields a message is done.
fn watermark(arrivals: &Arrivals, dead: &HashMap<u64, usize>, from: u64, upto: u64) -> u64 {
    let mut low = from;
    while low < upto
        && (!yields_message(low) || arrivals.by_id.contains_key(&low) || dead.contains_key(&low))
    {
        low += 1;
    }
    low
}

/// Every record the topic holds, from the beginning (no group).
fn read_topic(brokers: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "chaos-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut high = BTreeMap::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
        let (_, h) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(30))
            .unwrap();
        high.insert(p, h);
    }
    consumer.assign(&tpl).unwrap();
    let mut next: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while next.iter().any(|(p, o)| o < &high[p]) && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            next.insert(m.partition(), m.offset() + 1);
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert!(
        next.iter().all(|(p, o)| o >= &high[p]),
        "could not read the whole topic back"
    );
    out
}

fn main() {
    let seconds: u64 = env_or("OSSNOTIFY_CHAOS_SECONDS", 120);
    let strategy: String = env_or("OSSNOTIFY_CHAOS_STRATEGY", "range".to_owned());
    let load: f64 = env_or("OSSNOTIFY_CHAOS_LOAD", 0.5);
    let seed: u64 = env_or("OSSNOTIFY_CHAOS_SEED", now_ms() | 1);
    // The durable broker (the test broker's tansu on S3 storage, a local S3
    // server outliving it) survives its restarts; `memory` is the test
    // broker itself, never restarted.
    let durable = env_or("OSSNOTIFY_CHAOS_BROKER", "durable".to_owned()) == "durable";
    let restart_broker = durable;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(format!("target/chaos/{strategy}-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let broker_dir = dir.join("broker");
    let kafka_port = free_port();
    let broker_script = if durable {
        "durable-broker.sh"
    } else {
        "broker.sh"
    };
    let script = |args: &[&str]| script(broker_script, args);
    if durable {
        script(&[
            "start",
            broker_dir.to_str().unwrap(),
            &kafka_port.to_string(),
        ]);
    } else {
        let me = std::process::id().to_string();
        script(&["start", &kafka_port.to_string(), &me]);
    }
    script(&[
        "topic",
        &kafka_port.to_string(),
        TOPIC,
        &PARTITIONS.to_string(),
    ]);
    let mut w = World {
        dir: dir.clone(),
        broker_dir: broker_dir.clone(),
        kafka_port,
        mns_port: free_port(),
        mns: None,
        mns_starts: 0,
        strategy: strategy.clone(),
        members: (0..SLOTS).map(|_| None).collect(),
        starts: 0,
        peak_rss_kib: vec![0; SLOTS],
        bad_exits: Vec::new(),
    };
    w.mns(&[]);
    let broker = if durable {
        "tansu on S3 storage (a local S3 server), restarted among the faults"
    } else {
        "tansu in memory (the test broker), not restarted"
    };
    println!(
        "chaos: {strategy}, {seconds} s of harm, seed {seed}; machine: 2-core VM; {broker}; files in {}",
        dir.display()
    );

    // Calibration: one member, a healthy system, a backlog to work through.
    let next = Arc::new(AtomicU64::new(0));
    let delivery = Delivery::default();
    let calibration = 20_000u64;
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (brokers, counter, d) = (w.brokers(), next.clone(), delivery.clone());
        let t = std::thread::spawn({
            let stop = stop.clone();
            move || produce(brokers, 1e9, stop, counter, d)
        });
        while next.load(Ordering::SeqCst) < calibration {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }
    let produced_cal = next.load(Ordering::SeqCst);
    let want_cal = (0..produced_cal).filter(|s| yields_message(*s)).count();
    let mut arrivals = Arrivals::default();
    w.start(0);
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        arrivals.update(&dir);
        let n = arrivals.by_id.len();
        if n > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if n >= want_cal || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = first.map_or(1.0, |f| f.elapsed().as_secs_f64().max(0.1));
    let max_rate = want_cal as f64 / secs / (want_cal as f64 / produced_cal as f64);
    let rate = (max_rate * load).max(10.0);
    println!(
        "calibration: one member worked through {produced_cal} records in {secs:.1} s ({max_rate:.0} records/s); chaos load {load} → {rate:.0} records/s"
    );

    // The chaos.
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = {
        let (brokers, stop, next, d) = (
            w.brokers(),
            stop_producing.clone(),
            next.clone(),
            delivery.clone(),
        );
        // The sequence goes on where calibration ended.
        std::thread::spawn(move || produce(brokers, rate, stop, next, d))
    };
    let mut rng = Rng(seed);
    let mut faults: Vec<Fault> = Vec::new();
    let mut low = 0u64;
    let t0 = Instant::now();
    let mut next_fault = t0 + Duration::from_secs(5);
    let mut mns_faulty = false;
    let mut dead_cache = HashMap::new();
    let mut last_dead_read = Instant::now();
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(250));
        w.sample_rss();
        arrivals.update(&dir);
        if last_dead_read.elapsed() > Duration::from_secs(5) {
            dead_cache = Arrivals::dead_lettered(&dir);
            last_dead_read = Instant::now();
        }
        low = watermark(&arrivals, &dead_cache, low, next.load(Ordering::SeqCst));
        for f in faults.iter_mut().filter(|f| f.recovered.is_none()) {
            if low >= f.produced {
                f.recovered = Some(f.at.elapsed());
            }
        }
        if Instant::now() < next_fault {
            continue;
        }
        next_fault = Instant::now() + Duration::from_secs(6 + rng.below(10));
        // One fault at a time on mns-dev: heal the last one first.
        if mns_faulty {
            w.mns(&[]);
            mns_faulty = false;
        }
        // Members killed or stopped come back at the next tick.
        if w.running().is_empty() {
            let slot = rng.below(SLOTS as u64) as usize;
            w.start(slot);
        }
        let running = w.running();
        let pick = |rng: &mut Rng| running[rng.below(running.len() as u64) as usize];
        let kind = match rng.below(8) {
            0 if running.len() < SLOTS => {
                let slot = (0..SLOTS).find(|s| w.members[*s].is_none()).unwrap();
                w.start(slot);
                "start a member"
            }
            1 if running.len() > 1 => {
                let slot = pick(&mut rng);
                w.kill(slot, "-TERM");
                "SIGTERM a member"
            }
            2 => {
                let slot = pick(&mut rng);
                w.kill(slot, "-KILL");
                // Restarted a moment later (its partitions wait for the
                // session to time out meanwhile).
                std::thread::sleep(Duration::from_secs(1 + rng.below(4)));
                w.start(slot);
                "kill -9 a member, restart it"
            }
            3 => {
                let slot = pick(&mut rng);
                w.kill(slot, "-TERM");
                w.start(slot);
                "restart a member"
            }
            4 => {
                w.mns(&["--fail-first-seconds", "8"]);
                "mns-dev: 5xx burst (8 s)"
            }
            5 => {
                w.mns(&["--latency-ms", "300"]);
                mns_faulty = true;
                "mns-dev: 300 ms latency"
            }
            6 => {
                w.mns(&["--drop-rate", "0.3"]);
                mns_faulty = true;
                "mns-dev: 30 % dropped connections"
            }
            7 if restart_broker => {
                script(&[
                    "restart",
                    w.broker_dir.to_str().unwrap(),
                    &w.kafka_port.to_string(),
                ]);
                "restart the broker"
            }
            _ => {
                let slot = pick(&mut rng);
                w.kill(slot, "-KILL");
                std::thread::sleep(Duration::from_secs(1 + rng.below(4)));
                w.start(slot);
                "kill -9 a member, restart it"
            }
        };
        println!("{:>6.1} s: {kind}", t0.elapsed().as_secs_f64());
        faults.push(Fault {
            kind,
            at: Instant::now(),
            at_ms: now_ms(),
            produced: next.load(Ordering::SeqCst),
            recovered: None,
        });
    }

    // Heal, stop producing, catch up, stop.
    stop_producing.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    if mns_faulty {
        w.mns(&[]);
    }
    if w.running().is_empty() {
        w.start(0);
    }
    let produced = next.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(600);
    while low < produced && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        w.sample_rss();
        arrivals.update(&dir);
        low = watermark(&arrivals, &Arrivals::dead_lettered(&dir), low, produced);
        for f in faults.iter_mut().filter(|f| f.recovered.is_none()) {
            if low >= f.produced {
                f.recovered = Some(f.at.elapsed());
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    for s in w.running() {
        w.kill(s, "-TERM");
    }
    if let Some(mut c) = w.mns.take() {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    arrivals.update(&dir);

    // The verdict, against `ossnotify match` over what the topic holds.
    let records = read_topic(&w.brokers());
    let corpus = dir.join("corpus.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&corpus).unwrap());
        for r in &records {
            writeln!(f, "{r}").unwrap();
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ossnotify"))
        .args([
            "match",
            "-c",
            w.config(0).to_str().unwrap(),
            corpus.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "match failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected: HashMap<u64, usize> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["message"]["events"][0]["responseElements"]["requestId"]
            .as_str()
            .unwrap();
        *expected
            .entry(id.trim_start_matches("c-").parse().unwrap())
            .or_insert(0) += 1;
    }
    let dead = Arrivals::dead_lettered(&dir);
    let total_expected: usize = expected.values().sum();
    let mut lost = 0usize;
    let mut duplicates = 0usize;
    let mut dup_by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, want) in &expected {
        let times = arrivals.by_id.get(id).cloned().unwrap_or_default();
        let got = times.len() + dead.get(id).copied().unwrap_or(0);
        if got < *want {
            lost += want - got;
            if lost <= 10 {
                println!("LOST: request c-{id} ({got} of {want})");
            }
        }
        if got > *want {
            duplicates += got - want;
            let mut times = times;
            times.sort_unstable();
            for t in times.iter().skip(*want) {
                let kind = faults
                    .iter()
                    .rev()
                    .find(|f| f.at_ms <= *t)
                    .map_or("calibration (no fault)", |f| f.kind);
                *dup_by_kind.entry(kind).or_insert(0) += 1;
            }
        }
    }
    let extra_in_topic = records.len() as u64 - produced.min(records.len() as u64);
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| assignment | `{strategy}` |");
    println!(
        "| harm | {seconds} s, seed {seed}, {} faults |",
        faults.len()
    );
    println!("| produce rate | {rate:.0} records/s ({load} of {max_rate:.0}) |");
    println!(
        "| records in the topic | {} ({} produce failures, {extra_in_topic} producer retries) |",
        records.len(),
        delivery.0.failed.load(Ordering::Relaxed)
    );
    println!("| messages expected (`ossnotify match`) | {total_expected} |");
    println!("| lost | **{lost}** |");
    println!("| dead-lettered | {} |", dead.values().sum::<usize>());
    println!(
        "| duplicated | {duplicates} ({:.2} %) |",
        100.0 * duplicates as f64 / total_expected.max(1) as f64
    );
    let worst = faults
        .iter()
        .map(|f| f.recovered.unwrap_or(f.at.elapsed()))
        .max()
        .unwrap_or_default();
    println!(
        "| worst recovery after a fault | {:.1} s |",
        worst.as_secs_f64()
    );
    println!(
        "| peak RSS per member slot | {} |",
        w.peak_rss_kib
            .iter()
            .map(|k| format!("{:.0} MiB", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| members started | {} |", w.starts);
    println!();
    println!("| fault | times | duplicates charged | worst recovery |");
    println!("|---|---|---|---|");
    let mut kinds: BTreeMap<&str, (usize, Duration)> = BTreeMap::new();
    for f in &faults {
        let e = kinds.entry(f.kind).or_default();
        e.0 += 1;
        e.1 = e.1.max(f.recovered.unwrap_or(f.at.elapsed()));
    }
    for (kind, (n, worst)) in &kinds {
        println!(
            "| {kind} | {n} | {} | {:.1} s |",
            dup_by_kind.get(kind).copied().unwrap_or(0),
            worst.as_secs_f64()
        );
    }
    if let Some(n) = dup_by_kind.get("calibration (no fault)") {
        println!("| (before any fault) | | {n} | |");
    }
    for b in &w.bad_exits {
        println!("BAD EXIT: {b}");
    }
    if durable {
        script(&["stop", broker_dir.to_str().unwrap()]);
    } else {
        script(&["stop", &kafka_port.to_string()]);
    }
    if lost > 0 || !w.bad_exits.is_empty() {
        std::process::exit(1);
    }
}
