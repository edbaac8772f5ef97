//! Chaos harness (a load harness, not criterion): several release
//! `ossnotify run` members in one consumer group read a topic that a steady
//! producer keeps filling, and deliver to mns-dev, while the harness keeps
//! doing random harm: it starts an extra member, stops one (SIGTERM), kills
//! one (-9) and restarts it later, restarts one, makes mns-dev fail every
//! request for a while, answer slowly, or drop connections, fails mns-dev
//! until the sink's backlog fills and then scales a member away for good
//! with its directory (the members keep their backlogs and dead letters in
//! Kafka, the default), and restarts the broker: tansu on S3 storage against a local S3 server
//! (`scripts/durable-broker.sh`, which installs both), since an in-memory
//! broker loses everything when it restarts.
//!
//! At the end it heals everything, waits for the pipeline to catch up,
//! stops the members, reads back every record the topic holds, asks
//! `ossnotify match` what those records must produce, and checks that every
//! such message arrived at mns-dev at least once or sits in the dead-letter
//! topic. It reports the faults injected, the messages expected, lost (must
//! be 0: missing though the group committed past their record, and not waiting
//! in the backlog topic), undelivered
//! (must be 0: missing and not committed, so a stalled run rather than a
//! broken guarantee), duplicated (count and %, and per fault kind: each
//! extra delivery is charged to the last fault before it), the worst time
//! to recover after a fault (until every message produced before it had
//! arrived), and each member's peak RSS. It exits 1 if anything was lost or
//! undelivered.
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
#[path = "chaos/world.rs"]
mod world;

use world::{Arrivals, World};

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
use support::free_port;

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
/// Every record of the topic, with where it is: (partition, offset, text).
fn read_topic(brokers: &str) -> Vec<(i32, i64, String)> {
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
            out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    assert!(
        next.iter().all(|(p, o)| o >= &high[p]),
        "could not read the whole topic back"
    );
    out
}

/// The group's committed offset of each partition (after the members
/// stopped): what the next run would start from.
fn committed(brokers: &str) -> BTreeMap<i32, i64> {
    let reader = support::group_reader_on(brokers, GROUP);
    support::committed_within(&reader, TOPIC, PARTITIONS, Duration::from_secs(30))
}

/// The run's settings, from the environment.
struct Options {
    seconds: u64,
    strategy: String,
    load: f64,
    seed: u64,
    /// The durable broker (the test broker's tansu on S3 storage, a local
    /// S3 server outliving it) survives its restarts, which are then among
    /// the faults; otherwise the test broker itself, never restarted.
    durable: bool,
}

impl Options {
    fn from_env() -> Options {
        Options {
            seconds: env_or("OSSNOTIFY_CHAOS_SECONDS", 120),
            strategy: env_or("OSSNOTIFY_CHAOS_STRATEGY", "range".to_owned()),
            load: env_or("OSSNOTIFY_CHAOS_LOAD", 0.5),
            seed: env_or("OSSNOTIFY_CHAOS_SEED", now_ms() | 1),
            durable: env_or("OSSNOTIFY_CHAOS_BROKER", "durable".to_owned()) == "durable",
        }
    }

    fn broker_script(&self) -> &'static str {
        if self.durable {
            "durable-broker.sh"
        } else {
            "broker.sh"
        }
    }
}

fn main() {
    let o = Options::from_env();
    let mut w = setup(&o);
    let next = Arc::new(AtomicU64::new(0));
    let delivery = Delivery::default();
    let (mut arrivals, max_rate) = calibrate(&mut w, &next, &delivery);
    let rate = (max_rate * o.load).max(10.0);
    println!(
        "calibration: {max_rate:.0} records/s for one member; chaos load {} → {rate:.0} records/s",
        o.load
    );
    let (mut faults, low, mns_faulty) = harm(&mut w, &o, rate, &next, &delivery, &mut arrivals);
    let produced = next.load(Ordering::SeqCst);
    catch_up(
        &mut w,
        produced,
        low,
        mns_faulty,
        &mut faults,
        &mut arrivals,
    );
    let v = verdict(&w, &faults, &arrivals);
    report(&o, &w, &v, &faults, (rate, max_rate), produced, &delivery);
    if o.durable {
        script(o.broker_script(), &["stop", w.broker_dir.to_str().unwrap()]);
    } else {
        script(o.broker_script(), &["stop", &w.kafka_port.to_string()]);
    }
    if v.lost > 0 || v.undelivered > 0 || !w.bad_exits.is_empty() {
        std::process::exit(1);
    }
}

/// Starts the broker (with the topic) and mns-dev.
fn setup(o: &Options) -> World {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(format!("target/chaos/{}-{}", o.strategy, o.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let broker_dir = dir.join("broker");
    let kafka_port = free_port();
    let script = |args: &[&str]| script(o.broker_script(), args);
    if o.durable {
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
        broker_dir,
        kafka_port,
        mns_port: free_port(),
        mns: None,
        mns_starts: 0,
        strategy: o.strategy.clone(),
        members: (0..SLOTS).map(|_| None).collect(),
        starts: 0,
        peak_rss_kib: vec![0; SLOTS],
        bad_exits: Vec::new(),
    };
    w.mns(&[]);
    let broker = if o.durable {
        "tansu on S3 storage (a local S3 server), restarted among the faults"
    } else {
        "tansu in memory (the test broker), not restarted"
    };
    println!(
        "chaos: {}, {} s of harm, seed {}; machine: 2-core VM; {broker}; files in {}",
        o.strategy,
        o.seconds,
        o.seed,
        dir.display()
    );
    w
}

/// One member, a healthy system, a backlog to work through: how many
/// records a second one member sustains. Returns the arrivals so far too.
fn calibrate(w: &mut World, next: &Arc<AtomicU64>, delivery: &Delivery) -> (Arrivals, f64) {
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
        arrivals.update(&w.dir);
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
    println!("calibration: one member worked through {produced_cal} records in {secs:.1} s");
    let max_rate = want_cal as f64 / secs / (want_cal as f64 / produced_cal as f64);
    (arrivals, max_rate)
}

/// The harm: records produced at `rate` while a random fault strikes
/// every 6–16 s, for `o.seconds`. Returns the faults, the watermark, and
/// whether mns-dev is left faulty.
fn harm(
    w: &mut World,
    o: &Options,
    rate: f64,
    next: &Arc<AtomicU64>,
    delivery: &Delivery,
    arrivals: &mut Arrivals,
) -> (Vec<Fault>, u64, bool) {
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
    let mut rng = Rng(o.seed);
    let mut faults: Vec<Fault> = Vec::new();
    let mut low = 0u64;
    let t0 = Instant::now();
    let mut next_fault = t0 + Duration::from_secs(5);
    let mut mns_faulty = false;
    let mut dead_cache = HashMap::new();
    let mut last_dead_read = Instant::now();
    while t0.elapsed() < Duration::from_secs(o.seconds) {
        std::thread::sleep(Duration::from_millis(250));
        w.sample_rss();
        arrivals.update(&w.dir);
        if last_dead_read.elapsed() > Duration::from_secs(5) {
            dead_cache = Arrivals::dead_lettered(w);
            last_dead_read = Instant::now();
        }
        low = watermark(arrivals, &dead_cache, low, next.load(Ordering::SeqCst));
        mark_recovered(&mut faults, low);
        if Instant::now() < next_fault {
            continue;
        }
        next_fault = Instant::now() + Duration::from_secs(6 + rng.below(10));
        // One fault at a time on mns-dev: heal the last one first.
        if mns_faulty {
            w.mns(&[]);
        }
        // Members killed or stopped come back at the next tick.
        if w.running().is_empty() {
            let slot = rng.below(SLOTS as u64) as usize;
            w.start(slot);
        }
        let kind;
        // Every sixth fault (the third, the ninth, …) scales a member away
        // during a sink outage, so that every run has it whatever the draw.
        (kind, mns_faulty) = if faults.len() % 6 == 2 && w.running().len() > 1 {
            scale_away(w, &mut rng)
        } else {
            one_fault(w, &mut rng, o)
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
    stop_producing.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    (faults, low, mns_faulty)
}

/// Strikes one random fault; its name, and whether mns-dev stays faulty.
fn one_fault(w: &mut World, rng: &mut Rng, o: &Options) -> (&'static str, bool) {
    let running = w.running();
    let pick = |rng: &mut Rng| running[rng.below(running.len() as u64) as usize];
    let kill_and_restart = |w: &mut World, rng: &mut Rng, slot: usize| {
        w.kill(slot, "-KILL");
        // Restarted a moment later (its partitions wait for the session to
        // time out meanwhile).
        std::thread::sleep(Duration::from_secs(1 + rng.below(4)));
        w.start(slot);
        ("kill -9 a member, restart it", false)
    };
    match rng.below(9) {
        0 if running.len() < SLOTS => {
            let slot = (0..SLOTS).find(|s| w.members[*s].is_none()).unwrap();
            w.start(slot);
            ("start a member", false)
        }
        1 if running.len() > 1 => {
            let slot = pick(rng);
            w.kill(slot, "-TERM");
            ("SIGTERM a member", false)
        }
        3 => {
            let slot = pick(rng);
            w.kill(slot, "-TERM");
            w.start(slot);
            ("restart a member", false)
        }
        4 => {
            w.mns(&["--fail-first-seconds", "8"]);
            ("mns-dev: 5xx burst (8 s)", false)
        }
        5 => {
            w.mns(&["--latency-ms", "300"]);
            ("mns-dev: 300 ms latency", true)
        }
        6 => {
            w.mns(&["--drop-rate", "0.3"]);
            ("mns-dev: 30 % dropped connections", true)
        }
        8 if running.len() > 1 => scale_away(w, rng),
        7 if o.durable => {
            script(
                o.broker_script(),
                &[
                    "restart",
                    w.broker_dir.to_str().unwrap(),
                    &w.kafka_port.to_string(),
                ],
            );
            ("restart the broker", false)
        }
        // 2, and the cases above whose condition does not hold.
        _ => {
            let slot = pick(rng);
            kill_and_restart(w, rng, slot)
        }
    }
}

/// The sink fails long enough for its breaker to open and the backlog
/// topic to fill; then a member is scaled away for good, its directory with
/// it: what it wrote to the backlog is redelivered by the others.
fn scale_away(w: &mut World, rng: &mut Rng) -> (&'static str, bool) {
    w.mns(&["--fail-first-seconds", "25"]);
    std::thread::sleep(Duration::from_secs(12));
    let running = w.running();
    let slot = running[rng.below(running.len() as u64) as usize];
    w.kill(slot, "-KILL");
    let _ = std::fs::remove_dir_all(w.dir.join(format!("dead-letter-{slot}")));
    (
        "mns-dev outage (25 s), a member scaled away with its disk",
        false,
    )
}

/// Faults whose records have all arrived by watermark `low` recovered now.
fn mark_recovered(faults: &mut [Fault], low: u64) {
    for f in faults.iter_mut().filter(|f| f.recovered.is_none()) {
        if low >= f.produced {
            f.recovered = Some(f.at.elapsed());
        }
    }
}

/// Heals everything, waits (up to 10 min) until every produced record's
/// messages arrived, and stops the members and mns-dev.
fn catch_up(
    w: &mut World,
    produced: u64,
    mut low: u64,
    mns_faulty: bool,
    faults: &mut [Fault],
    arrivals: &mut Arrivals,
) {
    if mns_faulty {
        w.mns(&[]);
    }
    if w.running().is_empty() {
        w.start(0);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while low < produced && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        w.sample_rss();
        arrivals.update(&w.dir);
        low = watermark(arrivals, &Arrivals::dead_lettered(w), low, produced);
        mark_recovered(faults, low);
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
    arrivals.update(&w.dir);
}

/// What arrived against what `ossnotify match` says the topic's records
/// must produce.
struct Verdict {
    records: Vec<(i32, i64, String)>,
    total_expected: usize,
    /// Missing though the group committed past their record: the
    /// guarantee broken.
    lost: usize,
    /// Missing, and their record not committed or their message waiting
    /// in the backlog topic: the next run delivers them, but this one
    /// stalled.
    undelivered: usize,
    duplicates: usize,
    dead_lettered: usize,
    /// Duplicates charged to the fault before them.
    dup_by_kind: BTreeMap<&'static str, usize>,
}

fn verdict(w: &World, faults: &[Fault], arrivals: &Arrivals) -> Verdict {
    let committed = committed(&w.brokers());
    let records = read_topic(&w.brokers());
    let corpus = w.dir.join("corpus.ndjson");
    // Where each request's record is.
    let mut at: HashMap<u64, (i32, i64)> = HashMap::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&corpus).unwrap());
        for (p, o, r) in &records {
            writeln!(f, "{r}").unwrap();
            // Some records are not JSON on purpose (dead-lettered).
            let v: serde_json::Value = serde_json::from_str(r).unwrap_or_default();
            if let Some(id) = v["request_id"].as_str().and_then(|i| i.strip_prefix("c-")) {
                at.entry(id.parse().unwrap()).or_insert((*p, *o));
            }
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
    let dead = Arrivals::dead_lettered(w);
    let waiting = Arrivals::waiting_in_backlog(w);
    let mut v = Verdict {
        records,
        total_expected: expected.values().sum(),
        lost: 0,
        undelivered: 0,
        duplicates: 0,
        dead_lettered: dead.values().sum(),
        dup_by_kind: BTreeMap::new(),
    };
    for (id, want) in &expected {
        let mut times = arrivals.by_id.get(id).cloned().unwrap_or_default();
        let got = times.len() + dead.get(id).copied().unwrap_or(0);
        if got < *want {
            let (p, o) = at[id];
            let past = committed.get(&p).is_some_and(|c| o < *c);
            let (count, label) = if waiting.contains_key(id) {
                (
                    &mut v.undelivered,
                    "UNDELIVERED (waiting in the backlog topic)",
                )
            } else if past {
                (&mut v.lost, "LOST (committed past it)")
            } else {
                (&mut v.undelivered, "UNDELIVERED (not committed)")
            };
            *count += want - got;
            if *count <= 10 {
                println!("{label}: request c-{id} at {p}/{o} ({got} of {want})");
            }
        }
        if got > *want {
            v.duplicates += got - want;
            times.sort_unstable();
            for t in times.iter().skip(*want) {
                let kind = faults
                    .iter()
                    .rev()
                    .find(|f| f.at_ms <= *t)
                    .map_or("calibration (no fault)", |f| f.kind);
                *v.dup_by_kind.entry(kind).or_insert(0) += 1;
            }
        }
    }
    v
}

/// The two tables BENCHMARKS.md shows.
fn report(
    o: &Options,
    w: &World,
    v: &Verdict,
    faults: &[Fault],
    (rate, max_rate): (f64, f64),
    produced: u64,
    delivery: &Delivery,
) {
    let extra_in_topic = v.records.len() as u64 - produced.min(v.records.len() as u64);
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| assignment | `{}` |", o.strategy);
    println!(
        "| harm | {} s, seed {}, {} faults |",
        o.seconds,
        o.seed,
        faults.len()
    );
    println!(
        "| produce rate | {rate:.0} records/s ({} of {max_rate:.0}) |",
        o.load
    );
    println!(
        "| records in the topic | {} ({} produce failures, {extra_in_topic} producer retries) |",
        v.records.len(),
        delivery.0.failed.load(Ordering::Relaxed)
    );
    println!(
        "| messages expected (`ossnotify match`) | {} |",
        v.total_expected
    );
    println!("| lost (committed past) | **{}** |", v.lost);
    println!(
        "| undelivered at the end (not committed, or waiting in the backlog topic; the next run sends them) | {} |",
        v.undelivered
    );
    println!("| dead-lettered | {} |", v.dead_lettered);
    println!(
        "| duplicated | {} ({:.2} %) |",
        v.duplicates,
        100.0 * v.duplicates as f64 / v.total_expected.max(1) as f64
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
    for f in faults {
        let e = kinds.entry(f.kind).or_default();
        e.0 += 1;
        e.1 = e.1.max(f.recovered.unwrap_or(f.at.elapsed()));
    }
    for (kind, (n, worst)) in &kinds {
        println!(
            "| {kind} | {n} | {} | {:.1} s |",
            v.dup_by_kind.get(kind).copied().unwrap_or(0),
            worst.as_secs_f64()
        );
    }
    if let Some(n) = v.dup_by_kind.get("calibration (no fault)") {
        println!("| (before any fault) | | {n} | |");
    }
    for b in &w.bad_exits {
        println!("BAD EXIT: {b}");
    }
}
