//! Rule-index lookups with 10, 10k and 1M rules (1M over 100k buckets);
//! compiling and overlap-checking 1M rules; the index's memory.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use ossnotify::event::EventType;
use ossnotify::rules::{find_overlaps, Lookup, RegionPolicy, RuleIndex};
use ossnotify::synth::{Rng, Workload};

const QUERIES: usize = 100_000;

fn workload(buckets: usize) -> Workload {
    Workload {
        buckets,
        rules_per_bucket: 10,
        ruled_bucket_percent: 100,
        seed: 7,
    }
}

/// How lookups pick their bucket.
#[derive(Clone, Copy)]
enum Spread {
    /// Every bucket equally likely: the cache-hostile worst case.
    Uniform,
    /// Zipf (s = 1) over buckets, hot ones scattered through the index: what
    /// object-storage traffic looks like (a few buckets take most requests).
    Zipf,
}

/// Lookups, half of them on a key some rule watches. Their names and keys
/// sit together in one buffer, as a decoded record's fields do: strings
/// allocated one by one after building a big index would land all over its
/// freed scratch memory, and the benchmark would time the queries' own
/// cache misses.
struct Queries {
    text: String,
    items: Vec<(std::ops::Range<usize>, EventType, std::ops::Range<usize>)>,
}

impl Queries {
    fn lookups(&self) -> Vec<Lookup<'_>> {
        self.items
            .iter()
            .map(|(b, t, k)| Lookup {
                bucket: &self.text[b.clone()],
                region: "cn-hangzhou",
                event: *t,
                key: &self.text[k.clone()],
            })
            .collect()
    }
}

fn queries(w: &Workload, spread: Spread) -> Queries {
    let mut rng = Rng::new(11);
    let types = [
        EventType::PutObject,
        EventType::GetObject,
        EventType::DeleteObject,
    ];
    // Zipf by inverse CDF; rank r maps to a scattered bucket number.
    let mut cdf = Vec::with_capacity(w.buckets);
    let mut total = 0.0;
    for r in 1..=w.buckets {
        total += 1.0 / r as f64;
        cdf.push(total);
    }
    let mut q = Queries {
        text: String::with_capacity(QUERIES * 48),
        items: Vec::with_capacity(QUERIES),
    };
    for i in 0..QUERIES {
        let n = match spread {
            Spread::Uniform => rng.below(w.buckets as u64) as usize,
            Spread::Zipf => {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
                let rank = cdf.partition_point(|c| *c < u).min(w.buckets - 1);
                (rank * 7919 + 13) % w.buckets
            }
        };
        let dir = rng.below(w.rules_per_bucket as u64 * 2);
        let t = types[rng.below(3) as usize];
        let b0 = q.text.len();
        q.text.push_str(&Workload::bucket_name(n));
        let k0 = q.text.len();
        q.text.push_str(&format!("dir{dir}/2024/05/file-{i}.jpg"));
        q.items.push((b0..k0, t, k0..q.text.len()));
    }
    q
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("rule_index_lookup");
    g.throughput(Throughput::Elements(QUERIES as u64));
    g.measurement_time(Duration::from_secs(4));
    for (label, buckets) in [("10", 1), ("10k", 1_000), ("1M", 100_000)] {
        let w = workload(buckets);
        let rules = w.rules();
        let before = rss_bytes();
        let start = Instant::now();
        let index = RuleIndex::build(rules, RegionPolicy::default());
        let took = start.elapsed();
        eprintln!(
            "{label} rules: compiled in {:.3} s; index heap ≈ {:.1} MiB; RSS grew {:.1} MiB",
            took.as_secs_f64(),
            index.heap_bytes() as f64 / (1 << 20) as f64,
            rss_bytes().saturating_sub(before) as f64 / (1 << 20) as f64
        );
        let (qs, zipf) = (queries(&w, Spread::Uniform), queries(&w, Spread::Zipf));
        let lookups = qs.lookups();
        let mut out = Vec::with_capacity(8);
        let hits: usize = lookups
            .iter()
            .map(|l| {
                index.matches(l.bucket, l.region, l.event, l.key, &mut out);
                out.len()
            })
            .sum();
        eprintln!("{label} rules: {hits} matches in {QUERIES} lookups");
        g.bench_function(format!("single/{label}"), |bench| {
            bench.iter(|| {
                let mut n = 0;
                for l in &lookups {
                    index.matches(l.bucket, l.region, l.event, l.key, &mut out);
                    n += out.len();
                }
                black_box(n)
            })
        });
        // Lookups in batches, their misses overlapped.
        let (mut all, mut ends) = (Vec::new(), Vec::new());
        for (name, batch) in [("batch", lookups), ("batch_zipf", zipf.lookups())] {
            g.bench_function(format!("{name}/{label}"), |bench| {
                bench.iter(|| {
                    let mut n = 0;
                    for chunk in batch.chunks(256) {
                        index.matches_batch(chunk, &mut all, &mut ends);
                        n += all.len();
                    }
                    black_box(n)
                })
            });
        }
    }
    g.finish();
}

fn compile(c: &mut Criterion) {
    let rules = workload(100_000).rules();
    let mut g = c.benchmark_group("rule_index_1M");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("compile", |b| {
        b.iter_batched(
            || rules.clone(),
            |r| RuleIndex::build(r, RegionPolicy::default()),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("overlap_check", |b| {
        b.iter(|| black_box(find_overlaps(&rules, 50).len()))
    });
    g.finish();
}

criterion_group!(benches, lookups, compile);
criterion_main!(benches);
