//! `ossnotify loadgen`: writes operation logs to Kafka or a file, synthetic
//! (`synth::Workload`) or the lines of an input file, at a chosen rate, with
//! a progress bar.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::synth::{Rng, Workload};

/// Where records go.
pub enum Target {
    Kafka { brokers: String, topic: String },
    File(std::path::PathBuf),
}

/// What to write.
pub struct LoadSpec {
    pub target: Target,
    /// Records to write; with `input`, the input's lines are cycled.
    pub records: u64,
    /// Records per second; 0 is as fast as possible.
    pub rate: u64,
    /// Lines of this file instead of synthetic records.
    pub input: Option<std::path::PathBuf>,
    pub seed: u64,
}

enum Writer {
    Kafka(BaseProducer, String),
    /// The file and its path, for errors.
    File(std::io::BufWriter<std::fs::File>, PathBuf),
}

/// Why load generation stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the input file has no records")]
    EmptyInput,
    #[error("Kafka: {0}")]
    Kafka(rdkafka::error::KafkaError),
}

// Not `#[from]`: the message names the Kafka error; as the source too, a
// printed chain would say it twice.
impl From<rdkafka::error::KafkaError> for LoadgenError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        LoadgenError::Kafka(e)
    }
}

/// Writes the records; returns how many were written.
pub fn generate(spec: &LoadSpec) -> Result<u64, LoadgenError> {
    let lines = input_lines(spec.input.as_ref())?;
    let mut writer = match &spec.target {
        Target::Kafka { brokers, topic } => Writer::Kafka(
            ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("linger.ms", "5")
                .create()?,
            topic.clone(),
        ),
        Target::File(p) => Writer::File(
            std::io::BufWriter::new(std::fs::File::create(p).map_err(write_error(p))?),
            p.clone(),
        ),
    };
    let workload = Workload {
        seed: spec.seed,
        ..Workload::standard()
    };
    let mut rng = Rng::new(spec.seed);
    let bar = indicatif::ProgressBar::new(spec.records);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    for i in 0..spec.records {
        let record = match &lines {
            Some(l) if !l.is_empty() => l[(i as usize) % l.len()].clone().into_bytes(),
            Some(_) => return Err(LoadgenError::EmptyInput),
            None => workload.record(&mut rng, i),
        };
        writer.write(&i.to_string(), &record)?;
        if spec.rate > 0 {
            // Keep to the rate: sleep until this record's due time.
            let due = Duration::from_secs_f64((i + 1) as f64 / spec.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if i % 1024 == 0 {
            bar.set_position(i);
            if let Writer::Kafka(p, _) = &writer {
                p.poll(Duration::ZERO);
            }
        }
    }
    match &mut writer {
        Writer::Kafka(p, _) => p.flush(Duration::from_secs(30))?,
        Writer::File(f, path) => f.flush().map_err(write_error(path))?,
    }
    bar.finish_and_clear();
    Ok(spec.records)
}

/// The input file's non-blank lines, if one is given.
fn input_lines(input: Option<&PathBuf>) -> Result<Option<Vec<String>>, LoadgenError> {
    let Some(p) = input else {
        return Ok(None);
    };
    let read = |cause| LoadgenError::Read {
        path: p.clone(),
        cause,
    };
    let f = std::fs::File::open(p).map_err(read)?;
    let v: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(read)?;
    Ok(Some(
        v.into_iter().filter(|l| !l.trim().is_empty()).collect(),
    ))
}

impl Writer {
    /// One record, keyed `key` in Kafka (waiting while the local queue is
    /// full), a line in a file.
    fn write(&mut self, key: &str, record: &[u8]) -> Result<(), LoadgenError> {
        match self {
            Writer::Kafka(p, topic) => loop {
                match p.send(BaseRecord::to(topic.as_str()).key(key).payload(record)) {
                    Ok(()) => return Ok(()),
                    // The local queue is full: let it drain.
                    Err((_, _)) => {
                        p.poll(Duration::from_millis(10));
                    }
                }
            },
            Writer::File(f, path) => f
                .write_all(record)
                .and_then(|()| f.write_all(b"\n"))
                .map_err(write_error(path)),
        }
    }
}

/// The error of writing `path`.
fn write_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LoadgenError + '_ {
    move |source| LoadgenError::Write {
        path: path.to_owned(),
        cause: source,
    }
}
