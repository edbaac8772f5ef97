//! Synthetic operation logs and rule sets, deterministic from a seed: the
//! corpus of the benchmarks and of `ossnotify loadgen`.

use std::fmt::Write;

use crate::event::EventPattern;
use crate::rules::{Pattern, RuleSpec};

/// SplitMix64: small, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The shape of a synthetic workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub buckets: usize,
    pub rules_per_bucket: usize,
    /// Share (percent) of records whose bucket has rules.
    pub ruled_bucket_percent: u64,
    pub seed: u64,
}

impl Workload {
    /// The engine benchmark's workload: 10k rules, ~30% of records matching.
    pub fn standard() -> Workload {
        Workload {
            buckets: 1000,
            rules_per_bucket: 10,
            ruled_bucket_percent: 90,
            seed: 42,
        }
    }

    pub fn bucket_name(i: usize) -> String {
        format!("bucket-{i:06}")
    }

    /// Rule `j` of a bucket watches `dir{j}/` for a few types; every third
    /// rule narrows that to `*.jpg`. Prefixes differ, so no two overlap.
    pub fn rules(&self) -> Vec<RuleSpec> {
        let types = [
            &["ObjectCreated:*", "ObjectDownloaded:GetObject"][..],
            &["ObjectDownloaded:GetObject", "ObjectRemoved:*"][..],
            &["ObjectCreated:PutObject", "ObjectRemoved:DeleteObject"][..],
            &["ObjectCreated:*"][..],
        ];
        let mut rules = Vec::with_capacity(self.buckets * self.rules_per_bucket);
        for b in 0..self.buckets {
            let bucket = Self::bucket_name(b);
            for j in 0..self.rules_per_bucket {
                let resource = if j % 3 == 2 {
                    Pattern::PrefixSuffix(format!("dir{j}/").into(), ".jpg".into())
                } else {
                    Pattern::Prefix(format!("dir{j}/").into())
                };
                rules.push(RuleSpec {
                    id: format!("rule-{b}-{j}"),
                    bucket: bucket.clone(),
                    region: None,
                    events: types[j % types.len()]
                        .iter()
                        .map(|e| EventPattern::parse(e).expect("valid event name"))
                        .collect(),
                    resources: vec![resource],
                    sinks: vec![0],
                });
            }
        }
        rules
    }

    /// The rules as config text (`[[rules]]` tables), all sent to `sink`.
    pub fn rules_toml(&self, sink: &str) -> String {
        let mut text = String::new();
        for r in self.rules() {
            let events: Vec<String> = r.events.iter().map(|e| format!("\"{e}\"")).collect();
            let res: Vec<String> = r.resources.iter().map(|p| format!("\"{p}\"")).collect();
            text.push_str(&format!(
                "[[rules]]\nid = \"{}\"\nbucket = \"{}\"\nevents = [{}]\nresources = [{}]\nsinks = [\"{sink}\"]\n",
                r.id,
                r.bucket,
                events.join(", "),
                res.join(", ")
            ));
        }
        text
    }

    /// `n` records as NDJSON lines (no trailing newline in each).
    pub fn records(&self, n: usize) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(self.seed);
        (0..n).map(|i| self.record(&mut rng, i as u64)).collect()
    }

    /// One realistic record, SLS field names, ~700 bytes.
    pub fn record(&self, rng: &mut Rng, seq: u64) -> Vec<u8> {
        const OPS: &[(&str, u64)] = &[
            ("GetObject", 40),
            ("PutObject", 22),
            ("HeadObject", 12),
            ("DeleteObject", 8),
            ("CompleteMultipartUpload", 4),
            ("UploadPart", 6),
            ("GetObjectMeta", 4),
            ("DeleteObjects", 2),
            ("AppendObject", 2),
        ];
        let mut pick = rng.below(100);
        let mut op = OPS[0].0;
        for (name, weight) in OPS {
            if pick < *weight {
                op = name;
                break;
            }
            pick -= weight;
        }
        let bucket = if rng.chance(self.ruled_bucket_percent) {
            rng.below(self.buckets as u64) as usize
        } else {
            self.buckets + rng.below(self.buckets as u64 * 10) as usize
        };
        let dir = rng.below(self.rules_per_bucket as u64 + 1);
        let ext = ["jpg", "png", "log", "json"][rng.below(4) as usize];
        let status = if rng.chance(92) {
            200
        } else {
            [403, 404, 304][rng.below(3) as usize]
        };
        let size = rng.below(10_000_000);
        let millis = 1_714_500_000_000 + seq * 7;
        let mut s = String::with_capacity(800);
        let _ = write!(
            s,
            "{{\"time\":\"{}\",\"operation\":\"{op}\",\"bucket\":\"{}\",\"object\":\"dir{dir}/2024/05/01/file-{seq:08}.{ext}\",\
             \"bucket_location\":\"oss-cn-hangzhou\",\"owner_id\":\"1148912345646818\",\"requester_id\":\"{}\",\
             \"client_ip\":\"10.{}.{}.{}\",\"request_id\":\"{:024X}\",\"http_status\":{status},\"object_size\":{size},\
             \"etag\":\"\\\"{:032X}\\\"\",\"http_method\":\"GET\",\"user_agent\":\"aliyun-sdk-java/3.17.4(Linux/5.10.134/amd64;1.8.0_372)\",\
             \"referer\":\"-\",\"server_cost_time\":{},\"total_cost_time\":{},\"sync_request\":\"-\",\"access_id\":\"LTAI5tExampleAccess\",\
             \"storage_class\":\"Standard\",\"vpc_addr\":\"-\",\"host\":\"{}.oss-cn-hangzhou.aliyuncs.com\"}}",
            rfc3339(millis),
            Self::bucket_name(bucket),
            1_000_000 + rng.below(9_000_000),
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.next_u64() as u128 * 65_537,
            rng.next_u64() as u128 * rng.next_u64() as u128,
            rng.below(200),
            rng.below(2000),
            Self::bucket_name(bucket),
        );
        s.into_bytes()
    }
}

fn rfc3339(millis: u64) -> String {
    let mut v = Vec::with_capacity(24);
    crate::oplog::time::write_utc(millis as i64, &mut v);
    String::from_utf8(v).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Processed};
    use crate::oplog::KeyEncoding;
    use crate::rules::{find_overlaps, RegionPolicy, RuleIndex};

    #[test]
    fn standard_workload_is_valid_and_about_thirty_percent_matching() {
        let w = Workload::standard();
        let rules = w.rules();
        assert_eq!(rules.len(), 10_000);
        assert!(find_overlaps(&rules, 1).is_empty());
        let index = RuleIndex::build(rules, RegionPolicy::default());
        let mut engine = Engine::new(KeyEncoding::Raw, true);
        let records = w.records(20_000);
        let mut matched = 0;
        for r in &records {
            match engine.process(&index, r, |_| {}) {
                Processed::Matched(_) => matched += 1,
                Processed::Invalid(e) => panic!("{e}: {}", String::from_utf8_lossy(r)),
                _ => {}
            }
        }
        let share = matched as f64 / records.len() as f64;
        assert!((0.25..0.35).contains(&share), "{share}");
    }
}
