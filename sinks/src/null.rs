//! `type = "null"`: accepts and drops every message (benchmarks).

use serde::Deserialize;

use crate::config::{Encoding, FieldIssue, SinkConfig};

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
}
