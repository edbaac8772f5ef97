//! `ossnotify backlog ls | stats | show` (docs/commands.md): what each
//! sink's backlog holds, from either store, read beside the running daemon
//! without changing anything (on disk no lock is taken; in Kafka the
//! backlog group is read, never joined). A backlog in Kafka starts where
//! the backlog group has committed: what is before it was redelivered.

use ossnotify_sinks::kafka_store::read;
use ossnotify_sinks::store;
use ossnotify_sinks::Envelope;

use crate::config::{Config, StoreKind};
use crate::dead_letter_admin::{decode_payload, utc};
use crate::pipeline::delivery::{disk_backlog, kafka_backlog};

/// One sink's backlog as read.
#[derive(Debug, Clone, Default)]
pub struct SinkBacklog {
    pub sink: String,
    /// `disk` or `kafka`.
    pub store: &'static str,
    /// `directory D` or `topic T`.
    pub place: String,
    /// Oldest first: (id, write time in epoch ms, message).
    pub messages: Vec<(String, u64, Envelope)>,
}

/// Why a backlog could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the backlog of sink {sink} ({place}): {cause}")]
pub struct BacklogReadError {
    sink: String,
    place: String,
    cause: std::io::Error,
}

/// The backlog of every sink of `config` that has one (or only of sink
/// `only`), in name order.
pub fn read_all(config: &Config, only: Option<&str>) -> Result<Vec<SinkBacklog>, BacklogReadError> {
    let mut out = Vec::new();
    for s in config.sinks.iter().filter(|s| match only {
        Some(o) => o == s.name,
        None => s.config.isolated(),
    }) {
        out.push(match config.stores().backlog_store() {
            StoreKind::Disk => from_disk(config, &s.name)?,
            StoreKind::Kafka => from_kafka(config, &s.name)?,
        });
    }
    Ok(out)
}

fn from_disk(config: &Config, sink: &str) -> Result<SinkBacklog, BacklogReadError> {
    let root = config.stores().backlog_path();
    let first = disk_backlog::dir_of(&root, sink);
    let mut b = SinkBacklog {
        sink: sink.to_owned(),
        store: "disk",
        place: format!("directory {}", first.display()),
        messages: Vec::new(),
    };
    // Each process sharing the root has a slot of its own: NAME, NAME.1, …
    for slot in 0..64 {
        let mut dir = first.clone();
        if slot > 0 {
            dir.as_mut_os_string().push(format!(".{slot}"));
        }
        if !dir.is_dir() {
            continue;
        }
        let mut bad = None;
        store::read(&dir, |item| match item {
            store::Item::Entry(e) => match disk_backlog::decode(&e.payload) {
                Some(env) => b
                    .messages
                    .push((format!("{slot}/{}", e.id), e.time_ms, env)),
                None => bad = Some(e.id),
            },
            store::Item::Corrupt { .. } => {}
        })
        .map_err(|source| BacklogReadError {
            sink: sink.to_owned(),
            place: format!("directory {}", dir.display()),
            cause: source,
        })?;
        if let Some(id) = bad {
            tracing::warn!(sink, entry = %id, dir = %dir.display(), "a backlog entry is not a message");
        }
    }
    Ok(b)
}

fn from_kafka(config: &Config, sink: &str) -> Result<SinkBacklog, BacklogReadError> {
    let topic = config.stores().backlog_topic(sink);
    let mut b = SinkBacklog {
        sink: sink.to_owned(),
        store: "kafka",
        place: format!("topic {topic}"),
        messages: Vec::new(),
    };
    read::read_range(
        &config.stores().store_client(),
        &topic,
        &config.stores().backlog_group(),
        |m| {
            let headers = m.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
            let env = kafka_backlog::envelope_from(&m.value, headers);
            b.messages.push((
                format!("{}:{}", m.partition, m.offset),
                m.time_ms.max(0) as u64,
                env,
            ));
        },
    )
    .map_err(|e| BacklogReadError {
        sink: sink.to_owned(),
        place: b.place.clone(),
        cause: std::io::Error::other(e),
    })?;
    Ok(b)
}

/// An age: `45s`, `12m3s`, `5h2m`, `3d4h`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `stats`: per sink, its messages, their bytes and the oldest's age.
pub fn stats(backlogs: &[SinkBacklog], now_ms: u64) -> String {
    let mut out = String::from("SINK\tSTORE\tMESSAGES\tBYTES\tOLDEST\tPLACE\n");
    for b in backlogs {
        let bytes: usize = b.messages.iter().map(|m| m.2.payload.len()).sum();
        let oldest = b.messages.iter().map(|m| m.1).min();
        out.push_str(&format!(
            "{}\t{}\t{}\t{bytes}\t{}\t{}\n",
            b.sink,
            b.store,
            b.messages.len(),
            oldest.map_or("-".into(), |t| age(now_ms.saturating_sub(t))),
            b.place
        ));
    }
    out
}

/// `ls`: one line per message.
pub fn ls(backlogs: &[SinkBacklog]) -> String {
    let mut out = String::from("SINK\tID\tWRITTEN\tRULE\tKEY\tBYTES\n");
    for b in backlogs {
        for (id, t, e) in &b.messages {
            out.push_str(&format!(
                "{}\t{id}\t{}\t{}\t{}\t{}\n",
                b.sink,
                utc(*t),
                e.rule_id,
                e.key,
                e.payload.len()
            ));
        }
    }
    out
}

/// `show`: each message as JSON, its payload decoded.
pub fn show(backlogs: &[SinkBacklog]) -> String {
    let mut out = String::new();
    for b in backlogs {
        for (id, t, e) in &b.messages {
            let v = serde_json::json!({
                "sink": b.sink,
                "id": id,
                "written": utc(*t),
                "rule_id": e.rule_id,
                "key": e.key,
                "payload": decode_payload(&e.payload),
            });
            out.push_str(&serde_json::to_string_pretty(&v).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(723_000), "12m3s");
        assert_eq!(age(5 * 3_600_000 + 120_000), "5h2m");
        assert_eq!(age(3 * 86_400_000 + 4 * 3_600_000), "3d4h");
    }

    #[test]
    fn stats_and_ls_have_a_header_and_a_row_each() {
        let b = SinkBacklog {
            sink: "q".into(),
            store: "kafka",
            place: "topic g.backlog.q".into(),
            messages: vec![(
                "0:7".into(),
                1_000,
                Envelope {
                    payload: "abcd".into(),
                    rule_id: "r".into(),
                    key: "b/k".into(),
                    event_time_ms: 0,
                },
            )],
        };
        assert_eq!(
            stats(std::slice::from_ref(&b), 61_000),
            "SINK\tSTORE\tMESSAGES\tBYTES\tOLDEST\tPLACE\nq\tkafka\t1\t4\t1m0s\ttopic g.backlog.q\n"
        );
        assert_eq!(
            ls(&[b]),
            "SINK\tID\tWRITTEN\tRULE\tKEY\tBYTES\nq\t0:7\t1970-01-01T00:00:01.000Z\tr\tb/k\t4\n"
        );
    }
}
