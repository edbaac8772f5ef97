//! Any bytes as a dead-letter store: as a segment after a valid header, the
//! reader returns entries and unreadable stretches, never panics; a writer
//! opening the store repairs it (torn tail cut, corrupt entries moved
//! aside), after which the same entries read back and nothing is
//! unreadable. As a store of the first format (NDJSON), the reader returns
//! entries or an error naming a line, and entries write back unchanged.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ossnotify_sinks::dead_letter::{read_entries, read_store, DeadLetterStore};

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        std::path::PathBuf::from(format!("{base}/ossnotify-fuzz-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut seg = b"OSNSEG\x00\x01".to_vec();
    seg.extend_from_slice(data);
    std::fs::write(dir.join(format!("{:020}.seg", 1)), &seg).unwrap();
    let (before, _) = read_store(dir).unwrap();
    drop(DeadLetterStore::open(dir).unwrap());
    let (after, bad) = read_store(dir).unwrap();
    assert!(bad.iter().all(|b| b.why.starts_with("not a dead letter")), "{bad:?}");
    assert_eq!(
        after.iter().map(|e| &e.1).collect::<Vec<_>>(),
        before.iter().map(|e| &e.1).collect::<Vec<_>>()
    );

    if let Ok(entries) = read_entries(data, "fuzz") {
        let mut text = Vec::new();
        for e in &entries {
            serde_json::to_writer(&mut text, e).unwrap();
            text.push(b'\n');
        }
        assert_eq!(read_entries(&text[..], "again").unwrap(), entries);
    }
});
