//! Kafka topics as stores (docs/guarantees.md, "No state on a member's
//! disk"): with a Kafka source, each sink's backlog and the dead-letter
//! store are topics in the source's cluster, as Kafka Connect keeps its
//! internal topics and its dead-letter queue there. This module holds what
//! both use: the client settings taken over from the source, the topics'
//! creation at start, a producer whose writes return only once the cluster
//! has them (`acks=all`, idempotent), and a reader of a topic's range.
//!
//! The stores themselves: [`dead_letters`] here, the backlog in the
//! pipeline (it needs the pipeline's redelivery).

pub mod dead_letters;
mod producer;
pub mod read;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

pub use producer::{AckedProducer, Record};
pub use read::{read_range, Stored, Watermarks};

/// How long an admin request or a metadata look-up may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Properties of `[source.librdkafka]` that say how to reach and
/// authenticate to the cluster: the stores' clients take these over, and
/// only these (a consumer's fetch settings mean nothing to a producer,
/// and librdkafka warns about each).
const CONNECTION_PREFIXES: &[&str] = &[
    "security.",
    "sasl.",
    "ssl.",
    "ssl_",
    "socket.",
    "broker.address.",
    "client.",
    "metadata.",
    "reconnect.",
    "api.version.",
    "broker.version.",
    "connections.",
];

/// A client config for the cluster at `brokers`, with the connection and
/// security properties of `source` (the source's `[source.librdkafka]`).
pub fn client_config(brokers: &str, source: &BTreeMap<String, String>) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers);
    for (k, v) in source {
        if CONNECTION_PREFIXES.iter().any(|p| k.starts_with(p)) {
            cc.set(k, v);
        }
    }
    cc
}

/// One topic a store needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i32,
    /// `retention.ms` to create it with (`-1` for a backlog: nothing
    /// undelivered may expire); `None`: the broker's default.
    pub retention_ms: Option<i64>,
}

impl TopicSpec {
    /// The command that creates it with stock Kafka tools.
    pub fn create_command(&self) -> String {
        let mut s = format!(
            "kafka-topics.sh --create --topic {} --partitions {}",
            self.name, self.partitions
        );
        if self.replication_factor > 0 {
            s.push_str(&format!(
                " --replication-factor {}",
                self.replication_factor
            ));
        }
        if let Some(r) = self.retention_ms {
            s.push_str(&format!(" --config retention.ms={r}"));
        }
        s
    }
}

/// The cluster would not create the stores' topics (or could not be asked).
#[derive(Debug, thiserror::Error)]
#[error("the Kafka cluster did not create the store topics ({}); create them, e.g.:\n  {}", .refused.iter().map(|(t, e)| format!("{t}: {e}")).collect::<Vec<_>>().join("; "), .commands.join("\n  "))]
pub struct TopicsRefused {
    /// Each topic and the cluster's answer.
    pub refused: Vec<(String, String)>,
    /// How to create each with stock tools.
    pub commands: Vec<String>,
    /// No broker answered (unreachable, timed out): worth asking again,
    /// unlike an answer that refuses.
    pub unreachable: bool,
}

/// Error codes that mean the cluster did not answer, rather than refused.
fn unanswered(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        OperationTimedOut
            | RequestTimedOut
            | BrokerTransportFailure
            | AllBrokersDown
            | NetworkException
            | BrokerNotAvailable
            | LeaderNotAvailable
            | NotController
            | Resolve
    )
}

fn unanswered_error(e: &rdkafka::error::KafkaError) -> bool {
    match e {
        rdkafka::error::KafkaError::AdminOp(code) => unanswered(*code),
        e => e.rdkafka_error_code().is_none_or(unanswered),
    }
}

/// What `ensure_topics` found worth a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiniteRetention {
    pub topic: String,
    pub retention_ms: i64,
}

/// Creates the topics the cluster lacks; a topic that exists is kept as it
/// is. Returns the backlog-like topics (asked for `retention.ms = -1`) that
/// exist with a finite retention: what is older than that may expire
/// before it is delivered.
///
/// `timeout` bounds each request (a cluster that does not answer within it
/// is `unreachable`).
pub fn ensure_topics(
    cc: &ClientConfig,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<FiniteRetention>, TopicsRefused> {
    let refuse = |refused: Vec<(String, String)>, unreachable: bool| TopicsRefused {
        commands: specs
            .iter()
            .filter(|s| refused.iter().any(|r| r.0 == s.name))
            .map(TopicSpec::create_command)
            .collect(),
        refused,
        unreachable,
    };
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> = cc.create().map_err(|e| {
        refuse(
            specs
                .iter()
                .map(|s| (s.name.clone(), e.to_string()))
                .collect(),
            false,
        )
    })?;
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let retention: Vec<String> = specs
        .iter()
        .map(|s| s.retention_ms.map(|r| r.to_string()).unwrap_or_default())
        .collect();
    let new = new_topics(specs, &retention);
    let results = block_on(admin.create_topics(&new, &opts)).map_err(|e| {
        refuse(
            specs
                .iter()
                .map(|s| (s.name.clone(), e.to_string()))
                .collect(),
            unanswered_error(&e),
        )
    })?;
    let mut refused = Vec::new();
    let mut existed = Vec::new();
    let mut unreachable = true;
    for r in results {
        match r {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => existed.push(name),
            Err((name, code)) => {
                unreachable &= unanswered(code);
                refused.push((name, code.to_string()));
            }
        }
    }
    if !refused.is_empty() {
        return Err(refuse(refused, unreachable));
    }
    // Only topics that existed can have another retention than asked for.
    Ok(specs
        .iter()
        .filter(|s| existed.contains(&s.name) && s.retention_ms == Some(-1))
        .filter_map(|s| match topic_retention(&admin, &s.name, &opts) {
            Some(ms) if ms >= 0 => Some(FiniteRetention {
                topic: s.name.clone(),
                retention_ms: ms,
            }),
            _ => None,
        })
        .collect())
}

/// The topics to create, with `retention` (empty: the broker's default).
fn new_topics<'s>(specs: &'s [TopicSpec], retention: &'s [String]) -> Vec<NewTopic<'s>> {
    specs
        .iter()
        .zip(retention)
        .map(|(s, r)| {
            let t = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(s.replication_factor),
            );
            if r.is_empty() {
                t
            } else {
                t.set("retention.ms", r)
            }
        })
        .collect()
}

/// A topic's `retention.ms`, if the cluster says.
fn topic_retention(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    opts: &AdminOptions,
) -> Option<i64> {
    let spec = ResourceSpecifier::Topic(topic);
    let result = block_on(admin.describe_configs([&spec], opts)).ok()?;
    let resource = result.into_iter().next()?.ok()?;
    resource
        .get("retention.ms")
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.parse().ok())
}

/// A topic name for a store: `prefix` + `name`, with every byte Kafka does
/// not allow in a topic name (`[A-Za-z0-9._-]` only) written as `_XX`
/// (hex), and `_` itself as `__`, so that two sink names never share a
/// topic.
pub fn topic_name(prefix: &str, name: &str) -> String {
    let mut s = prefix.to_owned();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            s.push(b as char);
        } else if b == b'_' {
            s.push_str("__");
        } else {
            s.push_str(&format!("_{b:02X}"));
        }
    }
    s
}

/// Runs a future to its end on this thread. For the stores' blocking
/// callers (the workers, a sink's dead letters, the commands): librdkafka's
/// own threads complete the futures, so no runtime is needed, and this is
/// safe on a runtime's thread too (it blocks that thread, as a synced
/// write to disk does).
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_legal_and_distinct() {
        assert_eq!(
            topic_name("g.backlog.", "oss-events"),
            "g.backlog.oss-events"
        );
        assert_eq!(topic_name("p.", "a/b"), "p.a_2Fb");
        assert_eq!(topic_name("p.", "a_2Fb"), "p.a__2Fb");
        assert_ne!(topic_name("p.", "a b"), topic_name("p.", "a_20b"));
        assert_eq!(topic_name("p.", "é"), "p._C3_A9");
    }

    #[test]
    fn only_connection_properties_are_taken_over() {
        let props: BTreeMap<String, String> = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.username", "u"),
            ("fetch.wait.max.ms", "10"),
            ("session.timeout.ms", "10000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let cc = client_config("b:9092", &props);
        assert_eq!(cc.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(cc.get("sasl.username"), Some("u"));
        assert_eq!(cc.get("fetch.wait.max.ms"), None);
        assert_eq!(cc.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn the_create_command_names_every_setting() {
        let s = TopicSpec {
            name: "g.backlog.s".into(),
            partitions: 1,
            replication_factor: 3,
            retention_ms: Some(-1),
        };
        assert_eq!(
            s.create_command(),
            "kafka-topics.sh --create --topic g.backlog.s --partitions 1 --replication-factor 3 --config retention.ms=-1"
        );
    }

    #[test]
    fn block_on_waits_for_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(block_on(rx).unwrap(), 7);
    }
}
