//! The test broker: one tansu per test binary, started through
//! `scripts/broker.sh` (shared with the demo and CI) and stopped when the
//! test binary exits. `OSSNOTIFY_TEST_BROKERS` points the tests at a broker
//! that is already running instead.

#![allow(dead_code)] // included by test binaries that each use a part

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn script() -> PathBuf {
    // This file is included from both crates' tests; the workspace root is
    // where `scripts/` is.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = if here.join("scripts").is_dir() {
        here
    } else {
        here.parent().unwrap().to_path_buf()
    };
    root.join("scripts/broker.sh")
}

/// `host:port` of the broker, started on first use.
pub fn brokers() -> &'static str {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS.get_or_init(|| {
        if let Ok(b) = std::env::var("OSSNOTIFY_TEST_BROKERS") {
            return b;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        start_on(port, port);
        format!("127.0.0.1:{port}")
    })
}

/// Starts tansu on `port`, telling clients to connect to `advertised`;
/// it stops when this test binary exits.
fn start_on(port: u16, advertised: u16) {
    let status = Command::new("bash")
        .arg(script())
        .args([
            "start",
            &port.to_string(),
            &std::process::id().to_string(),
            &advertised.to_string(),
        ])
        .status()
        .expect("run scripts/broker.sh");
    assert!(status.success(), "scripts/broker.sh start failed");
}

/// Creates `name` with `partitions` partitions on the broker at `port`.
fn create_topic_on(port: &str, name: &str, partitions: u32) {
    let status = Command::new("bash")
        .arg(script())
        .args(["topic", port, name, &partitions.to_string()])
        .status()
        .expect("run scripts/broker.sh");
    assert!(status.success(), "creating topic {name} failed");
}

/// Creates `name` with `partitions` partitions.
pub fn create_topic(name: &str, partitions: u32) {
    create_topic_on(brokers().rsplit(':').next().unwrap(), name, partitions);
}

/// Produces `payloads` to `topic` (keys `k0`, `k1`, …), in order, and
/// waits until the broker has them all.
pub fn produce(topic: &str, payloads: &[String]) {
    produce_each(topic, payloads, |n| Shape {
        key: Some(format!("k{n}")),
        ..Shape::default()
    });
}

/// What a produced record has besides its payload.
#[derive(Default)]
pub struct Shape {
    pub key: Option<String>,
    pub partition: Option<i32>,
    /// Its timestamp, epoch ms (the producer's clock by default).
    pub timestamp: Option<i64>,
}

/// Produces `payloads` to `topic` in order, the `n`th shaped by
/// `shape(n)`, and waits until the broker has them all.
pub fn produce_each(topic: &str, payloads: &[String], shape: impl Fn(usize) -> Shape) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for (n, payload) in payloads.iter().enumerate() {
        let s = shape(n);
        loop {
            let mut r = BaseRecord::<str, str>::to(topic).payload(payload.as_str());
            if let Some(k) = &s.key {
                r = r.key(k.as_str());
            }
            if let Some(p) = s.partition {
                r = r.partition(p);
            }
            if let Some(t) = s.timestamp {
                r = r.timestamp(t);
            }
            match producer.send(r) {
                Ok(()) => break,
                // A full local queue: let it drain, then send again.
                Err(_) => {
                    producer.poll(std::time::Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(std::time::Duration::from_secs(60)).unwrap();
}

/// A second tansu, whose clients are told to connect to `advertised` (a
/// `support::proxy::Proxy`'s port), so that a test can cut them off
/// from it while it keeps its data. Stopped when dropped.
pub struct Another {
    pub port: u16,
}

impl Another {
    pub fn start(port: u16, advertised: u16) -> Another {
        start_on(port, advertised);
        Another { port }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        create_topic_on(&self.port.to_string(), name, partitions);
    }
}

impl Drop for Another {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.port.to_string()])
            .status();
    }
}

/// tansu on S3 storage (a local S3 server, moto, outliving it) through
/// `scripts/durable-broker.sh`: its data survives [`Durable::restart`].
/// Stopped, with its S3 server, when dropped.
pub struct Durable {
    pub port: u16,
    pub dir: PathBuf,
}

impl Durable {
    /// Starts one keeping its state under `dir`.
    pub fn start(dir: PathBuf) -> Durable {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = Durable { port, dir };
        d.script(&["start", d.dir.to_str().unwrap(), &port.to_string()]);
        d
    }

    fn script(&self, args: &[&str]) {
        let path = script().with_file_name("durable-broker.sh");
        let status = Command::new("bash")
            .arg(path)
            .args(args)
            .status()
            .expect("run scripts/durable-broker.sh");
        assert!(
            status.success(),
            "scripts/durable-broker.sh {args:?} failed"
        );
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.script(&[
            "topic",
            &self.port.to_string(),
            name,
            &partitions.to_string(),
        ]);
    }

    /// Stops tansu and starts it again on the same data.
    pub fn restart(&self) {
        self.script(&[
            "restart",
            self.dir.to_str().unwrap(),
            &self.port.to_string(),
        ]);
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script().with_file_name("durable-broker.sh"))
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
    }
}
