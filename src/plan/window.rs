//! The records a plan compares: an NDJSON file, or a time window of the
//! source's topics, read without joining the group or committing.
//!
//! # Finding the window in Kafka
//!
//! Each partition is read from the offset the broker's time index gives
//! for the window's start (`offsetsForTimes`), a hint only: a record is
//! compared when its operation time (`time`) is in the window, whatever
//! its offset. An operation is logged before its record is written, so a
//! record whose operation is in the window was written in it, and the
//! index never points past one. A broker without a usable index (tansu
//! answers offset 0 to every time) makes the first record read older than
//! the window: the partition is then scanned from there, and the output
//! says so. Each partition is read to the end it had when the plan
//! started (and no further than what was written by then).

use std::path::Path;

use ossnotify_sinks::kafka_store::{read, ADMIN_TIMEOUT};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;

/// One record and where it is.
pub struct Record<'a> {
    pub line: &'a [u8],
    pub at: At<'a>,
    /// When it was written to Kafka (epoch ms).
    pub written_ms: Option<i64>,
}

/// Where a record is.
pub enum At<'a> {
    Line(&'a str, u64),
    Kafka(&'a str, i32, i64),
}

impl Record<'_> {
    /// `file:line` or `topic/partition/offset`.
    pub fn at(&self) -> String {
        match self.at {
            At::Line(f, n) => format!("{f}:{n}"),
            At::Kafka(t, p, o) => format!("{t}/{p}/{o}"),
        }
    }
}

/// How the window was found: partitions read, and those whose time index
/// gave no help (scanned from an older record).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seek {
    pub topics: Vec<String>,
    pub partitions: usize,
    pub scanned: usize,
}

/// Calls `visit` for each line of `path` (`-`: standard input).
pub fn read_file(path: &Path, mut visit: impl FnMut(&Record<'_>)) -> std::io::Result<()> {
    use std::io::BufRead;
    let (mut input, name): (Box<dyn BufRead>, String) = if path == Path::new("-") {
        (Box::new(std::io::stdin().lock()), "<stdin>".into())
    } else {
        (
            Box::new(std::io::BufReader::with_capacity(
                1 << 16,
                std::fs::File::open(path)?,
            )),
            path.display().to_string(),
        )
    };
    let mut line = Vec::with_capacity(4096);
    let mut n = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        visit(&Record {
            line: &line,
            at: At::Line(&name, n),
            written_ms: None,
        });
    }
}

/// Reads the source topics of `config` from `since_ms` (by the time index)
/// to their ends at the start, calling `visit` for each record; `total`
/// is told how many records the window holds at most, before reading.
pub fn read_kafka(
    config: &Config,
    since_ms: i64,
    total: impl FnOnce(u64),
    mut visit: impl FnMut(&Record<'_>),
) -> Result<Seek, rdkafka::error::KafkaError> {
    let mut cc = config.stores().store_client();
    // The source's fetch sizes: a plan reads in bulk, as the pipeline does.
    for (k, v) in crate::pipeline::FETCH_DEFAULTS {
        cc.set(*k, *v);
    }
    // Never joined and never committed: the name only fills a required
    // setting.
    let c = read::consumer(&cc, "ossnotify.plan")?;
    let started_ms = ossnotify_sinks::store::now_ms() as i64;
    let mut seek = Seek {
        topics: config.source.topics.clone(),
        ..Seek::default()
    };
    let mut windows = Vec::new();
    for topic in &config.source.topics {
        let mut marks = read::watermarks(&c, topic)?;
        let mut tpl = TopicPartitionList::new();
        for &(p, _, _) in &marks.partitions {
            tpl.add_partition_offset(topic, p, Offset::Offset(since_ms))?;
        }
        let hints = c.offsets_for_times(tpl, ADMIN_TIMEOUT)?;
        for (p, from, end) in &mut marks.partitions {
            // A time after the last record: nothing to read.
            *from = match hints.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o.clamp(*from, *end),
                Some(Offset::End) => *end,
                _ => *from,
            };
        }
        seek.partitions += marks.partitions.len();
        windows.push((topic.clone(), marks));
    }
    total(windows.iter().map(|(_, m)| m.waiting()).sum());
    for (topic, marks) in windows {
        let mut first = std::collections::HashSet::new();
        read::read_between(&c, &topic, marks, Some(started_ms), |m| {
            let written = m.timestamp().to_millis().unwrap_or(0);
            if first.insert(m.partition()) && written < since_ms {
                seek.scanned += 1;
            }
            visit(&Record {
                line: m.payload().unwrap_or_default(),
                at: At::Kafka(&topic, m.partition(), m.offset()),
                written_ms: Some(written),
            });
        })?;
    }
    Ok(seek)
}
