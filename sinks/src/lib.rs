//! ossnotify's sinks (docs/sinks.md): each sink's user-facing configuration, its
//! delivery behind the one [`Sink`] trait, the registry that maps a config
//! `type` to it, and the dead-letter store. Adding a sink means one module
//! here and one line in [`REGISTRY`].

pub mod breaker;
pub mod cloudevents_binding;
pub mod config;
pub mod dead_letter;
pub mod file;
pub mod http;
pub mod kafka;
pub mod kafka_store;
pub mod log_limit;
pub mod metric_names;
pub mod mns;
pub mod null;
pub mod retry;
pub mod sink;
pub mod stdout;
pub mod store;

pub use config::{BuildError, Encoding, FieldIssue, RetryConfig, Secret, SinkConfig};
pub use dead_letter::{
    deliver_or_dead_letter, DeadLetter, DeadLetterKind, DeadLetterStore, GivenUp,
};
pub use sink::{Envelope, Outcome, ProbeFailure, Sink};

use serde::de::DeserializeOwned;

/// Counts `n` retries of the sink `name`.
pub fn count_retries(name: &str, n: u64) {
    if n > 0 {
        metrics::counter!(metric_names::RETRIES, "sink" => name.to_owned()).increment(n);
    }
}

/// One sink type: its config name and how to read its table.
pub struct SinkKind {
    pub name: &'static str,
    /// Keys that moved into nested tables: their flat spelling still loads,
    /// with a warning (the loader moves them).
    pub moved: &'static [config::Moved],
    parse: fn(toml::de::ValueDeserializer<'_>) -> Result<Box<dyn SinkConfig>, ParseError>,
}

/// A sink table that does not deserialize: the field path and toml's error
/// (whose span points into the config text).
#[derive(Debug)]
pub struct ParseError {
    pub path: String,
    pub error: toml::de::Error,
}

fn parse<T: SinkConfig + DeserializeOwned + 'static>(
    de: toml::de::ValueDeserializer<'_>,
) -> Result<Box<dyn SinkConfig>, ParseError> {
    serde_path_to_error::deserialize::<_, T>(de)
        .map(|c| Box::new(c) as Box<dyn SinkConfig>)
        .map_err(|e| ParseError {
            path: e.path().to_string(),
            error: e.into_inner(),
        })
}

/// Every sink type, by its config name.
pub static REGISTRY: &[SinkKind] = &[
    SinkKind {
        name: "mns_topic",
        moved: &config::REQUEST_MOVED,
        parse: parse::<mns::MnsTopicConfig>,
    },
    SinkKind {
        name: "mns_queue",
        moved: &mns::config::QUEUE_MOVED,
        parse: parse::<mns::MnsQueueConfig>,
    },
    SinkKind {
        name: "http",
        moved: &http::HTTP_MOVED,
        parse: parse::<http::HttpConfig>,
    },
    SinkKind {
        name: "kafka",
        moved: &[],
        parse: parse::<kafka::KafkaConfig>,
    },
    SinkKind {
        name: "file",
        moved: &[],
        parse: parse::<file::FileConfig>,
    },
    SinkKind {
        name: "stdout",
        moved: &[],
        parse: parse::<stdout::StdoutConfig>,
    },
    SinkKind {
        name: "null",
        moved: &[],
        parse: parse::<null::NullConfig>,
    },
];

impl SinkKind {
    pub fn find(name: &str) -> Option<&'static SinkKind> {
        REGISTRY.iter().find(|k| k.name == name)
    }

    /// The names, for "expected one of …" messages.
    pub fn names() -> Vec<&'static str> {
        REGISTRY.iter().map(|k| k.name).collect()
    }

    /// Reads a sink table (without its `type` key) into this kind's config.
    pub fn parse(
        &self,
        de: toml::de::ValueDeserializer<'_>,
    ) -> Result<Box<dyn SinkConfig>, ParseError> {
        (self.parse)(de)
    }
}
