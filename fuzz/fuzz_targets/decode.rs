//! Any bytes through the hot path: decode, map, match, encode. Must never
//! panic; whatever is emitted must be valid JSON.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ossnotify::engine::Engine;
use ossnotify::oplog::{KeyEncoding, Lines};
use ossnotify::rules::{RegionPolicy, RuleIndex};
use ossnotify::synth::Workload;

fn index() -> &'static RuleIndex {
    static INDEX: OnceLock<RuleIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let w = Workload { buckets: 4, rules_per_bucket: 10, ruled_bucket_percent: 100, seed: 1 };
        RuleIndex::build(w.rules(), RegionPolicy::default())
    })
}

fuzz_target!(|data: &[u8]| {
    for encoding in [KeyEncoding::Raw, KeyEncoding::Url] {
        let mut engine = Engine::new(encoding, true);
        for (_, line) in Lines::new(data) {
            engine.process(index(), line, |m| {
                assert!(std::str::from_utf8(m.json).is_ok());
                assert_eq!(m.base64.len() % 4, 0);
                // The CloudEvent of any message is JSON, and its `data` is
                // the notification's one event.
                let mut ce = Vec::new();
                m.write_cloudevent(&mut ce, "bus", 0);
                let ce: serde_json::Value = serde_json::from_slice(&ce).expect("a CloudEvent is JSON");
                let n: serde_json::Value = serde_json::from_slice(m.json).expect("the notification is JSON");
                assert_eq!(ce["data"], n["events"][0]);
            });
        }
    }
});
