//! `ossnotify dead-letter ls | stats | show | replay | purge` (docs/commands.md), and
//! `ossnotify replay`, which is `dead-letter replay` without filters.
//!
//! Both stores work alike, and all of it is safe beside the running
//! daemon: `ls`, `stats` and `show` only read; `replay` and `purge` take
//! entries out, never rewriting what the daemon appends to (on disk they
//! hold the store's remover lock, one at a time, see
//! [`ossnotify_sinks::store`]; in Kafka they append markers and move the
//! store's group, see [`ossnotify_sinks::kafka_store::dead_letters`]). A
//! replay takes out each batch it delivered as soon as it is delivered, so
//! one that dies midway re-sends at most that batch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ossnotify_sinks::dead_letter::{read_store, Contents, Unreadable};
use ossnotify_sinks::kafka_store::dead_letters::KafkaDeadLetters;
use ossnotify_sinks::store::{now_ms, EntryId, Remover};
use ossnotify_sinks::{DeadLetter, DeadLetterKind, Envelope, Outcome, Sink};

use crate::config::Config;

/// Which entries a command acts on; every field that is set must match.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub sink: Option<String>,
    pub rule: Option<String>,
    pub kind: Option<DeadLetterKind>,
    /// Epoch ms, inclusive.
    pub since_ms: Option<u64>,
    /// Epoch ms, exclusive.
    pub until_ms: Option<u64>,
}

impl Filter {
    pub fn matches(&self, d: &DeadLetter) -> bool {
        self.sink.as_ref().is_none_or(|s| *s == d.sink)
            && self.rule.as_ref().is_none_or(|r| *r == d.rule_id)
            && self.kind.is_none_or(|k| k == d.kind)
            && self.since_ms.is_none_or(|t| d.time_ms >= t)
            && self.until_ms.is_none_or(|t| d.time_ms < t)
    }

    pub fn is_empty(&self) -> bool {
        self.sink.is_none()
            && self.rule.is_none()
            && self.kind.is_none()
            && self.since_ms.is_none()
            && self.until_ms.is_none()
    }
}

/// Why a dead-letter command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(
        "unrecognised time {0:?}; expected an age (30m, 2h, 7d), RFC 3339 or epoch milliseconds"
    )]
    Time(String),
    #[error("time {0:?} is before 1970")]
    BeforeEpoch(String),
    #[error("cannot {what} the dead-letter store ({place}): {cause}")]
    Store {
        what: &'static str,
        place: String,
        cause: std::io::Error,
    },
    #[error("sink {sink}: {cause}")]
    Sink {
        sink: String,
        cause: ossnotify_sinks::BuildError,
    },
}

/// Where the dead letters are, as the config says (`[dead_letter] store`).
pub enum Place {
    Disk(PathBuf),
    Kafka(KafkaDeadLetters),
}

impl Place {
    /// The store of `config`. Nothing is created: a Kafka store's topic
    /// that does not exist yet holds nothing.
    pub fn of(config: &Config) -> Result<Place, DeadLetterError> {
        Ok(match config.stores().dead_letter_store() {
            crate::config::StoreKind::Disk => Place::Disk(config.dead_letter.path.clone()),
            crate::config::StoreKind::Kafka => {
                let topic = config.stores().dead_letter_topic();
                Place::Kafka(
                    KafkaDeadLetters::new(
                        &config.stores().store_client(),
                        &topic,
                        &config.stores().dead_letter_group(),
                    )
                    .map_err(|source| DeadLetterError::Store {
                        what: "open",
                        place: format!("topic {topic}"),
                        cause: source,
                    })?,
                )
            }
        })
    }

    /// `directory D` or `topic T`.
    pub fn describe(&self) -> String {
        match self {
            Place::Disk(d) => format!("directory {}", d.display()),
            Place::Kafka(k) => format!("topic {}", k.topic()),
        }
    }

    fn error(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> DeadLetterError {
        let place = self.describe();
        move |source| DeadLetterError::Store {
            what,
            place,
            cause: source,
        }
    }

    /// Every entry in order, and the unreadable ones.
    fn read(&self) -> Result<Contents, DeadLetterError> {
        match self {
            Place::Disk(d) => read_store(d),
            Place::Kafka(k) => k.read(),
        }
        .map_err(self.error("read"))
    }

    /// The right to take entries out: on disk, the store's remover lock
    /// (one replay or purge at a time).
    fn taker(&self) -> Result<Taker<'_>, DeadLetterError> {
        Ok(match self {
            Place::Disk(d) => Taker::Disk(Remover::lock(d).map_err(self.error("lock"))?),
            Place::Kafka(k) => Taker::Kafka(k),
        })
    }
}

/// Takes entries out of a store.
enum Taker<'a> {
    Disk(Remover),
    Kafka(&'a KafkaDeadLetters),
}

impl Taker<'_> {
    fn remove(&self, ids: &[EntryId]) -> std::io::Result<()> {
        match self {
            Taker::Disk(r) => r.remove(ids),
            Taker::Kafka(k) => k.remove(ids),
        }
    }
}

/// A time for `--since` / `--until`: an age (`90s`, `30m`, `2h`, `7d`: that
/// long ago), RFC 3339, or epoch milliseconds.
pub fn parse_time(s: &str) -> Result<u64, DeadLetterError> {
    let unit = |c: char| match c {
        's' => Some(1_000u64),
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    if let Some(u) = s.chars().last().and_then(unit) {
        if let Ok(n) = s[..s.len() - 1].parse::<u64>() {
            return Ok(now_ms().saturating_sub(n.saturating_mul(u)));
        }
    }
    let t = crate::oplog::time::parse(s).map_err(|_| DeadLetterError::Time(s.to_owned()))?;
    u64::try_from(t).map_err(|_| DeadLetterError::BeforeEpoch(s.to_owned()))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc(ms: u64) -> String {
    crate::oplog::time::utc(ms as i64)
}

/// The entries `filter` selects, in order, and the store's unreadable ones.
pub fn select(place: &Place, filter: &Filter) -> Result<Contents, DeadLetterError> {
    let (entries, bad) = place.read()?;
    Ok((
        entries
            .into_iter()
            .filter(|(_, d)| filter.matches(d))
            .collect(),
        bad,
    ))
}

/// What precedes an error's first `:` (an MNS code, `HTTP 500`, …).
fn error_code(error: &str) -> &str {
    error.split(':').next().unwrap_or_default().trim()
}

/// `ls`: one line per entry: id, time, kind, sink, rule, key, attempts,
/// error; then one line per unreadable entry.
pub fn ls(entries: &[(EntryId, DeadLetter)], bad: &[Unreadable]) -> String {
    let mut out = String::new();
    // A header above the rows; nothing at all for an empty store.
    if !entries.is_empty() || !bad.is_empty() {
        out.push_str("ID\tTIME\tKIND\tSINK\tRULE\tKEY\tATTEMPTS\tERROR\n");
    }
    for (id, d) in entries {
        let error: String = d.error.chars().take(160).collect();
        let (sink, rule, key) = if d.kind == DeadLetterKind::Delivery {
            (d.sink.as_str(), d.rule_id.as_str(), d.key.as_str())
        } else {
            ("-", "-", d.source.as_str())
        };
        out.push_str(&format!(
            "{id}\t{}\t{}\t{sink}\t{rule}\t{key}\t{}\t{error}\n",
            utc(d.time_ms),
            d.kind,
            d.attempts
        ));
    }
    for b in bad {
        out.push_str(&format!(
            "{}\tunreadable\t{} bytes: {}\n",
            b.id, b.bytes, b.why
        ));
    }
    out
}

/// `stats`: counts by sink, rule, kind, error code and age.
pub fn stats(entries: &[(EntryId, DeadLetter)], bad: &[Unreadable], now_ms: u64) -> String {
    let mut groups: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for (_, d) in entries {
        let age = now_ms.saturating_sub(d.time_ms);
        let age = match age {
            a if a < 3_600_000 => "< 1 h",
            a if a < 86_400_000 => "1 h to 1 d",
            a if a < 7 * 86_400_000 => "1 d to 7 d",
            _ => "> 7 d",
        };
        for (by, v) in [
            ("sink", d.sink.as_str()),
            ("rule", d.rule_id.as_str()),
            ("kind", d.kind.as_str()),
            ("error", error_code(&d.error)),
            ("age", age),
        ] {
            let v = if v.is_empty() { "-" } else { v };
            *groups
                .entry(by)
                .or_default()
                .entry(v.to_owned())
                .or_default() += 1;
        }
    }
    let mut out = format!("entries: {}\nunreadable: {}\n", entries.len(), bad.len());
    for by in ["sink", "rule", "kind", "error", "age"] {
        if let Some(g) = groups.get(by) {
            out.push_str(&format!("by {by}:\n"));
            let mut rows: Vec<(&String, &usize)> = g.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (k, n) in rows {
                out.push_str(&format!("  {n:>8}  {k}\n"));
            }
        }
    }
    out
}

/// `show`: each entry as JSON, its payload decoded (Base64 to the
/// notification JSON, JSON parsed) where it can be.
pub fn show(entries: &[(EntryId, DeadLetter)]) -> String {
    let mut out = String::new();
    for (id, d) in entries {
        let decoded = decode_payload(&d.payload);
        let v = serde_json::json!({
            "id": id.to_string(),
            "time": utc(d.time_ms),
            "kind": d.kind.as_str(),
            "sink": d.sink,
            "rule_id": d.rule_id,
            "key": d.key,
            "source": d.source,
            "attempts": d.attempts,
            "error": d.error,
            "payload": decoded,
        });
        out.push_str(&serde_json::to_string_pretty(&v).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// A payload as JSON: Base64 decoded to the notification JSON, JSON
/// parsed, anything else as a string.
pub fn decode_payload(payload: &str) -> serde_json::Value {
    base64_simd::STANDARD
        .decode_to_vec(payload.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .or_else(|| serde_json::from_str(payload).ok())
        .unwrap_or_else(|| serde_json::Value::String(payload.to_owned()))
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub delivered: usize,
    /// Delivery entries that failed again (kept).
    pub still_failing: usize,
    /// Entries that cannot be re-sent: invalid records, or a sink the config
    /// no longer has (kept).
    pub kept: usize,
}

/// Sends the selected delivery entries again through the sinks of
/// `config`; those delivered are taken out of the store.
pub async fn replay(
    config: &Config,
    place: &Place,
    filter: &Filter,
) -> Result<ReplayReport, DeadLetterError> {
    let remover = place.taker()?;
    let (entries, _) = select(place, filter)?;
    let mut report = ReplayReport::default();
    let mut by_sink: BTreeMap<String, Vec<(EntryId, DeadLetter)>> = BTreeMap::new();
    for (id, e) in entries {
        if e.kind == DeadLetterKind::Delivery {
            by_sink.entry(e.sink.clone()).or_default().push((id, e));
        } else {
            report.kept += 1;
        }
    }
    for (name, group) in by_sink {
        let Some(entry) = config.sinks.iter().find(|s| s.name == name) else {
            report.kept += group.len();
            continue;
        };
        let sink: Box<dyn Sink> =
            entry
                .config
                .build(&name)
                .map_err(|source| DeadLetterError::Sink {
                    sink: name.clone(),
                    cause: source,
                })?;
        for chunk in group.chunks(sink.max_batch().max(1)) {
            let envelopes: Vec<Envelope> = chunk
                .iter()
                .map(|(_, e)| Envelope {
                    payload: e.payload.clone(),
                    rule_id: e.rule_id.clone(),
                    key: e.key.clone(),
                    ..Default::default()
                })
                .collect();
            let outcomes = sink.deliver(&envelopes).await;
            let mut done = Vec::new();
            for ((id, e), o) in chunk.iter().zip(outcomes) {
                match o {
                    Outcome::Delivered => {
                        report.delivered += 1;
                        done.push(*id);
                    }
                    Outcome::Failed { error, .. } | Outcome::Deferred { error, .. } => {
                        tracing::warn!(sink = %name, rule = %e.rule_id, key = %e.key, error = %error, "still failing: kept in the dead-letter store");
                        report.still_failing += 1;
                    }
                }
            }
            remover
                .remove(&done)
                .map_err(place.error("take replayed entries out of"))?;
        }
    }
    Ok(report)
}

/// Takes the selected entries out of the store for good; how many.
pub fn purge(place: &Place, filter: &Filter) -> Result<usize, DeadLetterError> {
    let remover = place.taker()?;
    let (entries, _) = select(place, filter)?;
    let ids: Vec<EntryId> = entries.iter().map(|(id, _)| *id).collect();
    remover.remove(&ids).map_err(place.error("purge"))?;
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sink: &str, kind: &str, time_ms: u64, error: &str) -> (EntryId, DeadLetter) {
        let mut d = DeadLetter::delivery(sink, "r", "b/k", "eyJhIjoxfQ==", 3, error);
        d.kind = kind.parse().unwrap();
        d.time_ms = time_ms;
        (
            EntryId {
                segment: 1,
                offset: time_ms,
            },
            d,
        )
    }

    #[test]
    fn filters_and_times() {
        let f = Filter {
            sink: Some("a".into()),
            since_ms: Some(100),
            until_ms: Some(200),
            ..Filter::default()
        };
        assert!(f.matches(&entry("a", "delivery", 150, "x").1));
        assert!(!f.matches(&entry("a", "delivery", 200, "x").1));
        assert!(!f.matches(&entry("b", "delivery", 150, "x").1));
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2024-05-01T00:00:00Z").unwrap(),
            1_714_521_600_000
        );
        let two_h = now_ms() - parse_time("2h").unwrap();
        assert!((7_199_000..7_201_000).contains(&two_h), "{two_h}");
        assert!(
            matches!(parse_time("yesterday"), Err(DeadLetterError::Time(t)) if t == "yesterday")
        );
        assert!(matches!(
            parse_time("-5"),
            Err(DeadLetterError::BeforeEpoch(_)) | Err(DeadLetterError::Time(_))
        ));
    }

    #[test]
    fn stats_count_by_sink_kind_code_and_age() {
        let now = 10 * 86_400_000;
        let es = vec![
            entry(
                "a",
                "delivery",
                now - 1000,
                "TopicNotExist: no (request id X)",
            ),
            entry(
                "a",
                "delivery",
                now - 2 * 86_400_000,
                "TopicNotExist: no (request id Y)",
            ),
            entry("b", "delivery", now - 8 * 86_400_000, "HTTP 400: bad"),
        ];
        let s = stats(&es, &[], now);
        assert!(s.starts_with("entries: 3\nunreadable: 0\n"), "{s}");
        for want in [
            "         2  a\n",
            "         2  TopicNotExist\n",
            "         1  HTTP 400\n",
            "         1  < 1 h\n",
            "         1  > 7 d\n",
        ] {
            assert!(s.contains(want), "{want:?} in {s}");
        }
    }

    #[test]
    fn show_decodes_base64_payloads() {
        let s = show(&[entry("a", "delivery", 0, "e")]);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["payload"], serde_json::json!({"a": 1}));
        assert_eq!(v["id"], "1:0");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    }
}
