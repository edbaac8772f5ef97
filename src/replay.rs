//! `ossnotify replay`: re-sends the dead-letter store through the sinks of
//! the current config. Delivered entries are removed; the rest stay, with
//! their new error. The store is rewritten once, atomically, at the end, so
//! a replay that dies midway loses nothing (it may re-send: at-least-once).

use std::collections::BTreeMap;

use ossnotify_sinks::{DeadLetter, DeadLetterStore, Envelope, Outcome, Sink};

use crate::config::Config;

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

pub async fn replay(config: &Config) -> Result<ReplayReport, String> {
    let store = DeadLetterStore::open(&config.dead_letter.path).map_err(|e| {
        format!(
            "cannot open the dead-letter store {}: {e}",
            config.dead_letter.path.display()
        )
    })?;
    let entries = store
        .read_all()
        .map_err(|e| format!("cannot read the dead-letter store: {e}"))?;
    let mut report = ReplayReport::default();
    let mut keep = Vec::new();
    let mut by_sink: BTreeMap<String, Vec<DeadLetter>> = BTreeMap::new();
    for e in entries {
        if e.kind == "delivery" {
            by_sink.entry(e.sink.clone()).or_default().push(e);
        } else {
            report.kept += 1;
            keep.push(e);
        }
    }
    for (name, group) in by_sink {
        let Some(entry) = config.sinks.iter().find(|s| s.name == name) else {
            report.kept += group.len();
            keep.extend(group);
            continue;
        };
        let sink: Box<dyn Sink> = entry.config.build(&name)?;
        for chunk in group.chunks(sink.max_batch().max(1)) {
            let envelopes: Vec<Envelope> = chunk
                .iter()
                .map(|e| Envelope {
                    payload: e.payload.clone(),
                    rule_id: e.rule_id.clone(),
                    key: e.key.clone(),
                })
                .collect();
            let outcomes = sink.deliver(&envelopes).await;
            for (e, o) in chunk.iter().zip(outcomes) {
                match o {
                    Outcome::Delivered => report.delivered += 1,
                    Outcome::Failed { error, attempts } => {
                        tracing::warn!(sink = %name, rule = %e.rule_id, key = %e.key, error = %error, "still failing: kept in the dead-letter store");
                        report.still_failing += 1;
                        let mut again = e.clone();
                        again.error = error;
                        again.attempts += attempts;
                        keep.push(again);
                    }
                }
            }
        }
    }
    store
        .replace_all(&keep)
        .map_err(|e| format!("cannot rewrite the dead-letter store: {e}"))?;
    Ok(report)
}
