//! The whole engine on one thread (decode → map → match → encode JSON →
//! Base64) against a simd-json parse-only pass over the same corpus, in the
//! same run. `scripts/bench-report.py` turns the estimates into ratios.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Deserialize;

use ossnotify::engine::{Engine, Processed};
use ossnotify::oplog::{Decoder, KeyEncoding};
use ossnotify::rules::{RegionPolicy, RuleIndex};
use ossnotify::synth::Workload;

const RECORDS: usize = 20_000;

/// The fields the engine reads, for the serde_json reference pass.
#[allow(dead_code)]
#[derive(Deserialize)]
struct Borrowed<'a> {
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    operation: Cow<'a, str>,
    #[serde(borrow)]
    bucket: Cow<'a, str>,
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(borrow)]
    bucket_location: Cow<'a, str>,
    #[serde(borrow)]
    owner_id: Cow<'a, str>,
    #[serde(borrow)]
    requester_id: Cow<'a, str>,
    #[serde(borrow)]
    client_ip: Cow<'a, str>,
    #[serde(borrow)]
    request_id: Cow<'a, str>,
    http_status: u16,
    object_size: u64,
    #[serde(borrow)]
    etag: Cow<'a, str>,
}

fn engine(c: &mut Criterion) {
    let w = Workload::standard();
    let index = RuleIndex::build(w.rules(), RegionPolicy::default());
    let corpus = w.records(RECORDS);
    let bytes: usize = corpus.iter().map(Vec::len).sum();

    // Report the corpus once: size and match share.
    let mut e = Engine::new(KeyEncoding::Raw, true);
    let (mut matched, mut messages) = (0, 0);
    for r in &corpus {
        if let Processed::Matched(n) = e.process(&index, r, |_| {}) {
            matched += 1;
            messages += n;
        }
    }
    eprintln!(
        "corpus: {RECORDS} records, {} bytes/record, {:.1}% matching, {messages} messages, 10k rules",
        bytes / RECORDS,
        matched as f64 * 100.0 / RECORDS as f64
    );

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.measurement_time(Duration::from_secs(5));

    // simd-json's fastest way to parse a record we do not own: copy it into
    // a padded buffer, fill a reused tape (the engine's decoder does the same
    // and then reads the fields).
    g.bench_function("simd_json_parse_only", |b| {
        let mut buffers = simd_json::Buffers::new(4096);
        let mut scratch = Vec::with_capacity(4096);
        let mut tape = Some(simd_json::Tape(Vec::with_capacity(256)));
        b.iter(|| {
            let mut n = 0;
            for r in &corpus {
                scratch.clear();
                scratch.extend_from_slice(r);
                scratch.resize(r.len() + simd_json::INPUT_PADDING, 0);
                let mut t = tape.take().unwrap().reset();
                simd_json::fill_tape_padded(&mut scratch, r.len(), &mut buffers, &mut t).unwrap();
                n += t.0.len();
                tape = Some(t.reset());
            }
            black_box(n)
        })
    });

    g.bench_function("serde_json_borrowed_struct", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &corpus {
                let rec: Borrowed = serde_json::from_slice(r).unwrap();
                n += rec.bucket.len();
            }
            black_box(n)
        })
    });

    g.bench_function("decode_only", |b| {
        let mut d = Decoder::default();
        b.iter(|| {
            let mut n = 0;
            for r in &corpus {
                n += d.decode(r).unwrap().object_size.unwrap_or(0);
            }
            black_box(n)
        })
    });

    g.bench_function("full_engine", |b| {
        let mut e = Engine::new(KeyEncoding::Raw, true);
        b.iter(|| {
            let mut n = 0;
            for r in &corpus {
                e.process(&index, r, |m| n += m.base64.len());
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
