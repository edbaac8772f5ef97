//! The one-thread parse floor the whole job is compared with (issue 21): a
//! simd-json DOM parse (`to_borrowed_value`, the value tree a JSON-reading
//! program builds) of every line of an NDJSON file, on one thread, after
//! the file is read into memory. Prints records/s and seconds.
//!
//! `cargo bench --bench parse_floor -- FILE` (`scripts/file-job.sh` runs it
//! on its input, in the same run as the job).

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "target/file-job/in.ndjson".into());
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) => {
            // `cargo bench` runs every harness: this one needs the file job's input.
            eprintln!("parse floor: {path}: {e} (bash scripts/file-job.sh writes it)");
            return;
        }
    };
    // simd-json parses in place: each line is copied into a reused buffer
    // (as the pipeline copies each record), which is part of the floor.
    let mut scratch = Vec::with_capacity(4096);
    let mut buffers = simd_json::Buffers::new(4096);
    let mut records = 0u64;
    let mut fields = 0usize;
    let start = Instant::now();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        scratch.clear();
        scratch.extend_from_slice(line);
        let v = simd_json::to_borrowed_value_with_buffers(&mut scratch, &mut buffers)
            .unwrap_or_else(|e| panic!("{path}: record {}: {e}", records + 1));
        if let simd_json::BorrowedValue::Object(o) = &v {
            fields += o.len();
        }
        black_box(&v);
        records += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "parse floor: {records} records ({fields} fields) parsed to simd-json DOM values on one thread in {secs:.3} s: {:.0} records/s",
        records as f64 / secs
    );
}
