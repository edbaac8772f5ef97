//! The hot path in one place: decode a record, map it to events, match the
//! rules, encode each message. Used by `match`, the workers and the benches.

use crate::encode::{write_base64, write_notification};
use crate::event::{events_of, Mapped, Skip};
use crate::oplog::{DecodeError, Decoder, KeyEncoding};
use crate::rules::RuleIndex;

/// One message to deliver: the notification of one event for one rule.
pub struct Message<'a> {
    pub rule_id: &'a str,
    /// The rule's sinks, as positions in the config's sink list.
    pub sinks: &'a [u32],
    pub bucket: &'a str,
    pub key: &'a str,
    /// The notification JSON.
    pub json: &'a [u8],
    /// Its Base64; empty unless the engine was told sinks want it.
    pub base64: &'a [u8],
    /// The operation's time (`eventTime`), epoch ms.
    pub event_time_ms: i64,
    pub event_name: &'static str,
    pub region: &'a str,
    pub owner_id: &'a str,
    /// The record, and the position of this event among its events: what
    /// a CloudEvent's `id` is derived from.
    pub record: &'a [u8],
    pub event_index: u32,
}

impl Message<'_> {
    /// Appends this message as a CloudEvent, as produced at `publish_ms`.
    pub fn write_cloudevent(&self, out: &mut Vec<u8>, event_bus: &str, publish_ms: i64) {
        let id = crate::encode::event_id(self.record, self.event_index, self.rule_id);
        let ev = crate::encode::CloudEvent {
            notification: self.json,
            event_name: self.event_name,
            region: self.region,
            owner_id: self.owner_id,
            bucket: self.bucket,
            key: self.key,
            time_ms: self.event_time_ms,
            id: &id,
        };
        crate::encode::write_cloudevent(out, &ev, event_bus, publish_ms);
    }
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Produced this many messages.
    Matched(usize),
    /// Valid, produced events, but no rule matched them; with the reason when
    /// explaining.
    NoMatch(Option<String>),
    Skipped(Skip),
    Invalid(DecodeError),
}

/// Per-thread state of the hot path; every buffer is reused.
pub struct Engine {
    decoder: Decoder,
    matches: Vec<u32>,
    json: Vec<u8>,
    base64: Vec<u8>,
    key_encoding: KeyEncoding,
    want_base64: bool,
    explain: bool,
    /// The operation time of the last record processed, if it had one.
    time_ms: Option<i64>,
    /// Operation times `[from, until)` outside which a record matches
    /// nothing (a backfill's window).
    window: Option<(i64, i64)>,
}

impl Engine {
    pub fn new(key_encoding: KeyEncoding, want_base64: bool) -> Self {
        Engine {
            decoder: Decoder::default(),
            matches: Vec::with_capacity(8),
            json: Vec::with_capacity(1024),
            base64: Vec::with_capacity(1400),
            key_encoding,
            want_base64,
            explain: false,
            time_ms: None,
            window: None,
        }
    }

    /// Whether messages need their Base64 (some sink wants it): a reload
    /// can change the sinks.
    pub fn set_want_base64(&mut self, want: bool) {
        self.want_base64 = want;
    }

    /// The operation time (`time`, epoch ms) of the record last processed,
    /// if it could be read: what `plan` selects its window by.
    pub fn record_time_ms(&self) -> Option<i64> {
        self.time_ms
    }

    /// Only records whose operation time is in `[from, until)` match.
    pub fn with_window(mut self, window: Option<(i64, i64)>) -> Self {
        self.window = window;
        self
    }

    /// Compute why records matched nothing (slow; for `match --explain`).
    pub fn with_explain(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }

    /// Processes one record, calling `emit` for every message, in event then
    /// rule order.
    pub fn process(
        &mut self,
        index: &RuleIndex,
        line: &[u8],
        mut emit: impl FnMut(Message<'_>),
    ) -> Processed {
        let rec = match self.decoder.decode(line) {
            Ok(r) => r,
            Err(e) => {
                self.time_ms = None;
                return Processed::Invalid(e);
            }
        };
        self.time_ms = rec.time_ms;
        if let (Some((from, until)), Some(t)) = (self.window, rec.time_ms) {
            if t < from || t >= until {
                return Processed::NoMatch(None);
            }
        }
        let op = match events_of(&rec, self.key_encoding) {
            Mapped::Events(op) => op,
            Mapped::Skipped(s) => return Processed::Skipped(s),
            Mapped::Invalid(e) => return Processed::Invalid(e),
        };
        let mut sent = 0;
        let mut why = None;
        for (event_index, obj) in op.objects().enumerate() {
            index.matches(
                op.bucket,
                op.region,
                op.event_type,
                &obj.key,
                &mut self.matches,
            );
            if self.matches.is_empty() && self.explain && why.is_none() {
                why = Some(index.explain(op.bucket, op.region, op.event_type, &obj.key));
            }
            for &r in &self.matches {
                let (rule_id, sinks) = index.route(r);
                self.json.clear();
                write_notification(&mut self.json, &op, &obj, rule_id);
                self.base64.clear();
                if self.want_base64 {
                    write_base64(&mut self.base64, &self.json);
                }
                emit(Message {
                    rule_id,
                    sinks,
                    bucket: op.bucket,
                    key: &obj.key,
                    json: &self.json,
                    base64: &self.base64,
                    event_time_ms: op.time_ms,
                    event_name: op.event_type.name(),
                    region: op.region,
                    owner_id: op.owner_id,
                    record: line,
                    event_index: event_index as u32,
                });
                sent += 1;
            }
        }
        if sent == 0 {
            Processed::NoMatch(why)
        } else {
            Processed::Matched(sent)
        }
    }
}
