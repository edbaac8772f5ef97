//! The whole job's output does not change when its insides do: `ossnotify
//! run` over the synthetic corpus (20,000 records, the engine benchmark's
//! 10k rules) into a JSON and a Base64 `file` sink must give the same
//! lines as before. The digest below was taken from the build before the
//! latency and memory work (c517715) and checked equal to this one; a
//! change that alters the output fails here and must say why in its
//! commit, then update the digest.

mod support;

use ossnotify::synth::Workload;
use sha1::{Digest, Sha1};

/// SHA-1 of the sorted lines of both sinks' files (JSON, then Base64).
const DIGEST: &str = "9d08725ebcc68f94c9638556a0a14d81837879c7";

#[test]
fn the_whole_job_gives_the_same_output_as_before() {
    let d = support::Dir::new();
    let w = Workload::standard();
    let mut corpus = Vec::new();
    for r in w.records(20_000) {
        corpus.extend_from_slice(&r);
        corpus.push(b'\n');
    }
    std::fs::write(d.path("in.ndjson"), &corpus).unwrap();
    let rules = w
        .rules_toml("json")
        .replace("sinks = [\"json\"]", "sinks = [\"json\", \"b64\"]");
    let config = d.write(
        "job.toml",
        &format!(
            "[source]\ntype = \"file\"\npath = \"{}\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.json]\ntype = \"file\"\npath = \"{}\"\nencoding = \"json\"\n\n[sinks.b64]\ntype = \"file\"\npath = \"{}\"\nencoding = \"base64\"\n\n{rules}",
            d.path("in.ndjson").display(),
            d.path("dead-letter").display(),
            d.path("json.ndjson").display(),
            d.path("b64.ndjson").display(),
        ),
    );
    let out = support::run(&["run", "-c", config.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let mut hash = Sha1::new();
    let mut lines = 0;
    for sink in ["json.ndjson", "b64.ndjson"] {
        let text = std::fs::read_to_string(d.path(sink)).unwrap();
        let mut sorted: Vec<&str> = text.lines().collect();
        sorted.sort_unstable();
        lines += sorted.len();
        for l in sorted {
            hash.update(l.as_bytes());
            hash.update(b"\n");
        }
    }
    let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(lines, 2 * 5_710, "messages of the synthetic corpus");
    assert_eq!(digest, DIGEST, "the output changed");
}
