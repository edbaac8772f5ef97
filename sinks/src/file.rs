//! `type = "file"`: append one message per line, flushed to disk before the
//! messages count as delivered.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::config::{Encoding, FieldIssue, SinkConfig};
use crate::sink::{Delivery, Envelope, Outcome, Sink};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub encoding: Encoding,
    /// `aliyuneventbusname` with `encoding = "cloudevents"`.
    #[serde(default)]
    pub event_bus: Option<String>,
}

impl SinkConfig for FileConfig {
    fn kind(&self) -> &'static str {
        "file"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn event_bus(&self) -> Option<&str> {
        self.event_bus.as_deref()
    }
    fn build(&self, name: &str) -> Result<Box<dyn Sink>, crate::config::BuildError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|cause| crate::config::BuildError::File {
                what: "open",
                path: self.path.clone(),
                cause,
            })?;
        Ok(Box::new(FileSink {
            name: name.to_owned(),
            file: Arc::new(Mutex::new(file)),
        }))
    }
    fn validate(&self) -> Vec<FieldIssue> {
        if self.path.as_os_str().is_empty() {
            return vec![FieldIssue::new("path", "is empty")];
        }
        Vec::new()
    }
}

pub struct FileSink {
    name: String,
    file: Arc<Mutex<std::fs::File>>,
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        512
    }

    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        let mut buf = Vec::with_capacity(batch.iter().map(|e| e.payload.len() + 1).sum());
        for e in batch {
            buf.extend_from_slice(e.payload.as_bytes());
            buf.push(b'\n');
        }
        let file = self.file.clone();
        let n = batch.len();
        Box::pin(async move {
            // Disk writes and fsync block: off the async threads.
            let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                let mut f = file
                    .lock()
                    .map_err(|_| std::io::Error::other("file sink lock poisoned"))?;
                f.write_all(&buf)?;
                f.sync_data()
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            match written {
                Ok(()) => vec![Outcome::Delivered; n],
                Err(e) => vec![
                    Outcome::Failed {
                        error: format!("write failed: {e}"),
                        attempts: 1
                    };
                    n
                ],
            }
        })
    }
}
