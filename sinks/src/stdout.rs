//! `type = "stdout"`: one message per line on standard output.

use serde::Deserialize;

use std::io::Write;

use crate::config::{Encoding, FieldIssue, SinkConfig};
use crate::sink::{Delivery, Envelope, Outcome, Sink};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    #[serde(default)]
    pub encoding: Encoding,
    /// `aliyuneventbusname` with `encoding = "cloudevents"`.
    #[serde(default)]
    pub event_bus: Option<String>,
}

impl SinkConfig for StdoutConfig {
    fn kind(&self) -> &'static str {
        "stdout"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn event_bus(&self) -> Option<&str> {
        self.event_bus.as_deref()
    }
    fn validate(&self) -> Vec<FieldIssue> {
        Vec::new()
    }
    fn build(&self, name: &str) -> Result<Box<dyn Sink>, crate::config::BuildError> {
        Ok(Box::new(StdoutSink {
            name: name.to_owned(),
        }))
    }
}

pub struct StdoutSink {
    name: String,
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        512
    }

    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        Box::pin(async move {
            let mut out = std::io::stdout().lock();
            let written = batch
                .iter()
                .try_for_each(|e| writeln!(out, "{}", e.payload))
                .and_then(|_| out.flush());
            match written {
                Ok(()) => vec![Outcome::Delivered; batch.len()],
                Err(e) => vec![
                    Outcome::Failed {
                        error: format!("stdout: {e}"),
                        attempts: 1
                    };
                    batch.len()
                ],
            }
        })
    }
}
