//! `type = "stdout"`: one message per line on standard output.

use serde::Deserialize;

use crate::config::{Encoding, FieldIssue, SinkConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    #[serde(default)]
    pub encoding: Encoding,
}

impl SinkConfig for StdoutConfig {
    fn kind(&self) -> &'static str {
        "stdout"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn validate(&self) -> Vec<FieldIssue> {
        Vec::new()
    }
}
