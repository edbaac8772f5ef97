//! `type = "null"`: accepts and drops every message (benchmarks).

use serde::Deserialize;

use crate::config::{Encoding, FieldIssue, SinkConfig};
use crate::sink::{Delivery, Envelope, Outcome, Sink};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullConfig {}

impl SinkConfig for NullConfig {
    fn kind(&self) -> &'static str {
        "null"
    }
    fn encoding(&self) -> Encoding {
        Encoding::Base64
    }
    fn validate(&self) -> Vec<FieldIssue> {
        Vec::new()
    }
    fn build(&self, name: &str) -> Result<Box<dyn Sink>, crate::config::BuildError> {
        Ok(Box::new(NullSink {
            name: name.to_owned(),
        }))
    }
}

pub struct NullSink {
    name: String,
}

impl Sink for NullSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn max_batch(&self) -> usize {
        4096
    }
    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        Box::pin(async move { vec![Outcome::Delivered; batch.len()] })
    }
}
