//! A worker thread: takes batches of records from the source, decodes,
//! matches and encodes each (the engine), tells the offset tracker how
//! many messages each record yields, writes invalid records to the
//! dead-letter store (fsynced before they count as done), and hands the
//! messages to the sinks' queues (blocking while a queue is full:
//! backpressure).
//!
//! A worker that cannot go on (the dead-letter store cannot be written, a
//! sink's driver is gone) returns the error; the supervisor stops the run.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use ossnotify_sinks::{DeadLetter, DeadLetterStore, Encoding, Envelope};

use super::batch::{Batch, Topics};
use super::counters::Counters;
use super::delivery::item::Item;
use super::error::PipelineError;
use super::revoked::Revoked;
use super::routing::Routing;
use super::tap::Taps;
use super::tracker::Progress;
use crate::engine::{Engine, Processed};

/// A worker's counts for one batch, added to the shared counters once per
/// batch (shared atomics bumped per record would bounce between cores).
#[derive(Default)]
struct Tally {
    records: u64,
    invalid: u64,
    skipped: u64,
    unmatched: u64,
    messages: u64,
}

impl Tally {
    fn add_to(&self, c: &Counters) {
        for (n, a) in [
            (self.records, &c.records),
            (self.invalid, &c.invalid),
            (self.skipped, &c.skipped),
            (self.unmatched, &c.unmatched),
            (self.messages, &c.messages),
        ] {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

pub struct Worker {
    pub rx: Receiver<Batch>,
    pub spares: Sender<Batch>,
    pub routing: Arc<ArcSwap<Routing>>,
    pub topics: Arc<Topics>,
    pub store: Arc<DeadLetterStore>,
    pub progress: Sender<Progress>,
    pub counters: Arc<Counters>,
    /// Generations given up: their records are skipped.
    pub revoked: Arc<Revoked>,
    pub engine: Engine,
    pub cpus: Vec<usize>,
    /// `ossnotify tap`s attached to the daemon.
    pub taps: Arc<Taps>,
    /// Count invalid records without dead-lettering them (a backfill).
    pub invalid_not_dead_lettered: bool,
}

impl Worker {
    /// Processes batches until the source's channel closes.
    pub fn run(mut self) -> Result<(), PipelineError> {
        super::cpus::pin_or_warn(&self.cpus);
        let mut scratch = Scratch {
            out: Vec::new(),
            cloudevent: Vec::with_capacity(2048),
        };
        while let Ok(batch) = self.rx.recv() {
            // One routing per batch: a reload takes effect at the next one.
            let routing = self.routing.load_full();
            self.engine.set_want_base64(routing.want_base64);
            let done = self.process(&batch, &routing, &mut scratch);
            self.hand_on(batch, done, &routing)?;
        }
        Ok(())
    }

    /// Decodes, matches and encodes a batch's records into per-sink
    /// chunks, counting what became of each.
    fn process(&mut self, batch: &Batch, routing: &Routing, scratch: &mut Scratch) -> Done {
        // CloudEvents' `aliyunpublishtime`: when the batch was encoded.
        let publish_ms = ossnotify_sinks::store::now_ms() as i64;
        // One atomic load a batch while no tap is attached.
        let tap = self.taps.any().then(|| self.taps.view());
        let mut done = Done {
            tally: Tally::default(),
            invalid: Vec::new(),
            resolved: Vec::with_capacity(batch.len()),
            chunks: routing.sinks.iter().map(|_| Vec::new()).collect(),
        };
        let mut revoked = self.revoked.view();
        for (coord, payload, too_large) in batch.iter() {
            if revoked.contains(&coord) {
                // Its next owner reads it again; the tracker forgot it.
                continue;
            }
            if let Some(len) = too_large {
                // Never held whole: dead-lettered with its start.
                done.tally.records += 1;
                done.tally.invalid += 1;
                done.invalid.push(too_large_record(
                    payload,
                    len,
                    &self.topics.describe(&coord),
                ));
                done.resolved.push((coord, 0));
                continue;
            }
            scratch.out.clear();
            // A Kafka message may hold several records, one per line; a
            // line source's payload is one line.
            let lines = if coord.partition < 0 {
                crate::oplog::Lines::one(payload)
            } else {
                crate::oplog::Lines::new(payload)
            };
            for (line_no, line) in lines {
                done.tally.records += 1;
                let (sinks, out, cloudevent) =
                    (&routing.sinks, &mut scratch.out, &mut scratch.cloudevent);
                let outcome = self.engine.process(&routing.index, line, |m| {
                    if let Some(tap) = &tap {
                        tap.offer(&m, &|s| sinks[s as usize].name.as_str());
                    }
                    for &s in m.sinks {
                        out.push((s, envelope(&m, &sinks[s as usize], cloudevent, publish_ms)));
                    }
                });
                self.count(outcome, &coord, line_no, line, &mut done);
            }
            done.tally.messages += scratch.out.len() as u64;
            done.resolved.push((coord, scratch.out.len() as u32));
            for (s, envelope) in scratch.out.drain(..) {
                let chunk = &mut done.chunks[s as usize];
                let read_at = if chunk.is_empty() {
                    batch.read_at
                } else {
                    None
                };
                chunk.push(Item {
                    envelope,
                    coord,
                    read_at,
                });
            }
        }
        done
    }

    /// Counts a record's outcome; an invalid one is dead-lettered (unless
    /// this run counts them only), named by where it came from.
    fn count(
        &self,
        outcome: Processed,
        coord: &super::batch::Coord,
        line_no: usize,
        line: &[u8],
        done: &mut Done,
    ) {
        match outcome {
            Processed::Invalid(_) if self.invalid_not_dead_lettered => {
                done.tally.invalid += 1;
            }
            Processed::Invalid(e) => {
                done.tally.invalid += 1;
                let source = if coord.partition < 0 {
                    self.topics.describe(coord)
                } else {
                    format!("{} line {line_no}", self.topics.describe(coord))
                };
                done.invalid.push(DeadLetter::invalid_record(
                    &String::from_utf8_lossy(line.trim_ascii_end()),
                    &e.to_string(),
                    &source,
                ));
            }
            Processed::Skipped(_) => done.tally.skipped += 1,
            Processed::NoMatch(_) => done.tally.unmatched += 1,
            Processed::Matched(_) => {}
        }
    }

    /// Counts the batch, returns it to the source, makes its invalid
    /// records durable, tells the tracker what each record yields, and
    /// hands the chunks to the sinks.
    fn hand_on(
        &self,
        mut batch: Batch,
        done: Done,
        routing: &Routing,
    ) -> Result<(), PipelineError> {
        done.tally.add_to(&self.counters);
        let read_at = batch.read_at;
        batch.clear();
        let _ = self.spares.try_send(batch);
        // Invalid records are durable before they count as done; if
        // they cannot be, the batch is never resolved (never committed).
        self.store
            .append(&done.invalid)
            .map_err(|e| PipelineError::store(&self.store, e))?;
        let _ = self.progress.send(Progress::Resolved(done.resolved));
        for (queue, chunk) in routing.sinks.iter().zip(done.chunks) {
            if !chunk.is_empty() {
                // Blocks while the sink's queue is full: backpressure.
                queue
                    .tx
                    .blocking_send(chunk)
                    .map_err(|_| PipelineError::DriverGone(queue.name.clone()))?;
            }
        }
        if let Some(t) = read_at {
            metrics::histogram!(crate::metric_names::STAGE_SECONDS, "stage" => "encoded")
                .record(t.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

/// Buffers a worker reuses from record to record.
struct Scratch {
    /// A record's messages, by sink position.
    out: Vec<(u32, Envelope)>,
    /// A CloudEvent being written.
    cloudevent: Vec<u8>,
}

/// What a batch became: its counts, its invalid records, how many messages
/// each record yields, and the messages by sink.
struct Done {
    tally: Tally,
    invalid: Vec<DeadLetter>,
    resolved: Vec<(super::batch::Coord, u32)>,
    chunks: Vec<Vec<Item>>,
}

/// A message as `sink` wants it (its encoding), with what the delivery
/// path needs to know of it.
#[inline]
fn envelope(
    m: &crate::engine::Message<'_>,
    sink: &super::routing::SinkQueue,
    cloudevent: &mut Vec<u8>,
    publish_ms: i64,
) -> Envelope {
    let bytes = match sink.encoding {
        Encoding::Json => m.json,
        Encoding::Base64 => m.base64,
        Encoding::CloudEvents => {
            cloudevent.clear();
            m.write_cloudevent(cloudevent, &sink.event_bus, publish_ms);
            &cloudevent[..]
        }
    };
    Envelope {
        // The engine writes ASCII Base64 or UTF-8 JSON (checked anyway,
        // with SIMD: no `unsafe` for this).
        payload: match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        },
        rule_id: m.rule_id.to_owned(),
        key: [m.bucket, "/", m.key].concat(),
        event_time_ms: m.event_time_ms,
    }
}

/// The dead letter of a record over the size limit, of which only the
/// start (`kept`) was ever held.
fn too_large_record(kept: &[u8], len: usize, source: &str) -> DeadLetter {
    DeadLetter::invalid_record(
        &String::from_utf8_lossy(kept),
        &format!(
            "record is {len} bytes, over the limit of {}; only its first {} bytes are kept here",
            crate::oplog::MAX_RECORD_BYTES,
            kept.len()
        ),
        source,
    )
}
