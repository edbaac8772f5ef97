//! Taps: the messages a running daemon produces, streamed to whoever asks
//! (`ossnotify tap`, `GET /tap` on the metrics server), as Vector's
//! `vector tap` does.
//!
//! The hot path never waits for a tapper. A worker checks one atomic per
//! batch; only while a tap is attached does it look at each message, and
//! then it offers each one that passes a tap's filters to that tap's
//! bounded channel with `try_send`. A full channel drops the message and
//! counts it; the tap's stream tells the tapper how many it lost.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::encode::write_json_string;
use crate::engine::Message;

/// Messages a tap may hold before the pipeline drops for it.
pub const TAP_CAPACITY: usize = 1024;
/// Taps attached at once; more are refused.
pub const MAX_TAPS: usize = 16;

/// Why a tap request was refused (`/tap` answers 400 or 503 with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapRequestError {
    #[error("{0}: not UTF-8")]
    NotUtf8(String),
    #[error("sample: {0:?} is not a rate in (0, 1]")]
    Sample(String),
    #[error("limit: {0:?} is not a count")]
    Limit(String),
    #[error("unknown parameter {0:?}")]
    Unknown(String),
    #[error("{MAX_TAPS} taps are attached already")]
    TooMany,
}

/// What a tap wants; every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TapFilter {
    pub rule: Option<String>,
    pub bucket: Option<String>,
    /// A message whose rule sends to this sink.
    pub sink: Option<String>,
    /// An event name, or a prefix ending in `*` (`ObjectCreated:*`).
    pub event: Option<String>,
    /// The share of matching messages kept, in (0, 1].
    pub sample: f64,
    /// Include the notification JSON.
    pub full: bool,
    /// End the stream after this many messages.
    pub limit: Option<u64>,
}

impl TapFilter {
    /// Parses `/tap`'s query string: `rule`, `bucket`, `sink`, `event`,
    /// `sample`, `full`, `limit`.
    pub fn from_query(query: &str) -> Result<TapFilter, TapRequestError> {
        let mut f = TapFilter {
            sample: 1.0,
            ..TapFilter::default()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8()
                .map_err(|_| TapRequestError::NotUtf8(k.to_owned()))?
                .into_owned();
            match k {
                "rule" => f.rule = Some(v),
                "bucket" => f.bucket = Some(v),
                "sink" => f.sink = Some(v),
                "event" => f.event = Some(v),
                "full" => f.full = v != "0" && v != "false",
                "sample" => {
                    f.sample = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| *s > 0.0 && *s <= 1.0)
                        .ok_or_else(|| TapRequestError::Sample(v.clone()))?
                }
                "limit" => {
                    f.limit = Some(v.parse().map_err(|_| TapRequestError::Limit(v.clone()))?)
                }
                _ => return Err(TapRequestError::Unknown(k.to_owned())),
            }
        }
        Ok(f)
    }

    fn matches<'n>(&self, m: &Message<'_>, sink_names: &dyn Fn(u32) -> &'n str) -> bool {
        let eq = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        let event = match self.event.as_deref() {
            None => true,
            Some(e) => match e.strip_suffix('*') {
                Some(prefix) => m.event_name.starts_with(prefix),
                None => m.event_name == e,
            },
        };
        eq(&self.rule, m.rule_id)
            && eq(&self.bucket, m.bucket)
            && event
            && self
                .sink
                .as_deref()
                .is_none_or(|s| m.sinks.iter().any(|&i| sink_names(i) == s))
    }
}

/// One attached tap (known by its address: `Arc::ptr_eq`).
struct Subscriber {
    filter: TapFilter,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    dropped: AtomicU64,
}

/// The daemon's taps, shared by the workers and the metrics server.
#[derive(Default)]
pub struct Taps {
    /// How many are attached: the one thing a worker reads per batch.
    attached: AtomicUsize,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
}

/// An attached tap: its stream of NDJSON lines. Dropping it detaches.
pub struct Tap {
    pub rx: tokio::sync::mpsc::Receiver<Bytes>,
    taps: Arc<Taps>,
    sub: Arc<Subscriber>,
}

impl Tap {
    /// Messages dropped for this tap since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.sub.dropped.swap(0, Ordering::Relaxed)
    }

    /// The most messages this tap is to receive.
    pub fn limit(&self) -> u64 {
        self.sub.filter.limit.unwrap_or(u64::MAX)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let mut subs = self.taps.subscribers.lock().expect("not poisoned");
        subs.retain(|s| !Arc::ptr_eq(s, &self.sub));
        self.taps.attached.store(subs.len(), Ordering::Relaxed);
    }
}

impl Taps {
    pub fn attach(self: &Arc<Self>, filter: TapFilter) -> Result<Tap, TapRequestError> {
        let mut subs = self.subscribers.lock().expect("not poisoned");
        if subs.len() >= MAX_TAPS {
            return Err(TapRequestError::TooMany);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(TAP_CAPACITY);
        let sub = Arc::new(Subscriber {
            filter,
            tx,
            dropped: AtomicU64::new(0),
        });
        subs.push(sub.clone());
        self.attached.store(subs.len(), Ordering::Relaxed);
        Ok(Tap {
            rx,
            taps: self.clone(),
            sub,
        })
    }

    /// Whether any tap is attached (one relaxed load: read once per batch).
    #[inline]
    pub fn any(&self) -> bool {
        self.attached.load(Ordering::Relaxed) > 0
    }

    /// The subscribers as they are now, for one batch.
    pub fn view(&self) -> TapView {
        TapView {
            subs: self.subscribers.lock().expect("not poisoned").clone(),
        }
    }
}

/// The taps attached when a batch began.
pub struct TapView {
    subs: Vec<Arc<Subscriber>>,
}

impl TapView {
    /// Offers `m` to every tap that wants it, never waiting.
    pub fn offer<'n>(&self, m: &Message<'_>, sink_names: &dyn Fn(u32) -> &'n str) {
        for sub in &self.subs {
            if !sub.filter.matches(m, sink_names)
                || (sub.filter.sample < 1.0 && fastrand::f64() >= sub.filter.sample)
            {
                continue;
            }
            // A full tap costs a counter, not a line built for nothing.
            if sub.tx.capacity() == 0 {
                sub.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if sub
                .tx
                .try_send(line(m, sink_names, sub.filter.full))
                .is_err()
            {
                sub.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `{"rule":…,"sinks":[…],"event":…,"bucket":…,"key":…[,"message":…]}\n`
fn line<'n>(m: &Message<'_>, sink_names: &dyn Fn(u32) -> &'n str, full: bool) -> Bytes {
    let mut out = Vec::with_capacity(160 + if full { m.json.len() } else { 0 });
    out.extend_from_slice(b"{\"rule\":");
    write_json_string(&mut out, m.rule_id);
    out.extend_from_slice(b",\"sinks\":[");
    for (i, &s) in m.sinks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(&mut out, sink_names(s));
    }
    out.extend_from_slice(b"],\"event\":");
    write_json_string(&mut out, m.event_name);
    out.extend_from_slice(b",\"bucket\":");
    write_json_string(&mut out, m.bucket);
    out.extend_from_slice(b",\"key\":");
    write_json_string(&mut out, m.key);
    if full {
        out.extend_from_slice(b",\"message\":");
        out.extend_from_slice(m.json);
    }
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(rule: &'a str, sinks: &'a [u32]) -> Message<'a> {
        Message {
            rule_id: rule,
            sinks,
            bucket: "b",
            key: "k",
            json: b"{\"events\":[{}]}",
            base64: b"",
            event_time_ms: 0,
            event_name: "ObjectCreated:PutObject",
            region: "r",
            owner_id: "o",
            record: b"{}",
            event_index: 0,
        }
    }

    fn names(i: u32) -> &'static str {
        ["mns", "hook"][i as usize]
    }

    #[test]
    fn filters_and_query_parsing() {
        let f = TapFilter::from_query("rule=r&event=ObjectCreated%3A*&sink=hook&full=1&limit=7")
            .unwrap();
        assert!(f.full && f.sample == 1.0 && f.limit == Some(7));
        assert_eq!(
            TapFilter::from_query("limit=-1"),
            Err(TapRequestError::Limit("-1".into()))
        );
        assert!(f.matches(&message("r", &[0, 1]), &names));
        assert!(!f.matches(&message("r", &[0]), &names));
        assert!(!f.matches(&message("s", &[1]), &names));
        let f = TapFilter::from_query("event=ObjectRemoved:DeleteObject").unwrap();
        assert!(!f.matches(&message("r", &[0]), &names));
        assert_eq!(
            TapFilter::from_query("sample=0"),
            Err(TapRequestError::Sample("0".into()))
        );
        assert!(TapFilter::from_query("sample=1.5").is_err());
        assert_eq!(
            TapFilter::from_query("color=red"),
            Err(TapRequestError::Unknown("color".into()))
        );
    }

    #[test]
    fn a_full_tap_drops_and_counts_and_detaching_stops_the_offers() {
        let taps = Arc::new(Taps::default());
        assert!(!taps.any());
        let tap = taps.attach(TapFilter::from_query("").unwrap()).unwrap();
        assert!(taps.any());
        let view = taps.view();
        for _ in 0..TAP_CAPACITY + 10 {
            view.offer(&message("r", &[0]), &names);
        }
        assert_eq!(tap.take_dropped(), 10);
        assert_eq!(tap.take_dropped(), 0);
        drop(tap);
        assert!(!taps.any());
        assert!(taps.view().subs.is_empty());
    }

    #[test]
    fn at_most_max_taps_are_attached() {
        let taps = Arc::new(Taps::default());
        let held: Vec<Tap> = (0..MAX_TAPS)
            .map(|_| taps.attach(TapFilter::default()).unwrap())
            .collect();
        assert_eq!(
            taps.attach(TapFilter::default()).err(),
            Some(TapRequestError::TooMany)
        );
        drop(held);
        assert!(taps.attach(TapFilter::default()).is_ok());
    }

    #[test]
    fn sampling_keeps_about_the_rate() {
        let taps = Arc::new(Taps::default());
        let mut tap = taps
            .attach(TapFilter::from_query("sample=0.25").unwrap())
            .unwrap();
        let view = taps.view();
        for _ in 0..1000 {
            view.offer(&message("r", &[0]), &names);
        }
        let mut n = 0;
        while tap.rx.try_recv().is_ok() {
            n += 1;
        }
        assert!((150..350).contains(&n), "{n}");
    }
}
