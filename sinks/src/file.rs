//! `type = "file"`: append one message per line.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Encoding, FieldIssue, SinkConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub encoding: Encoding,
}

impl SinkConfig for FileConfig {
    fn kind(&self) -> &'static str {
        "file"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn validate(&self) -> Vec<FieldIssue> {
        if self.path.as_os_str().is_empty() {
            return vec![FieldIssue::new("path", "is empty")];
        }
        Vec::new()
    }
}
