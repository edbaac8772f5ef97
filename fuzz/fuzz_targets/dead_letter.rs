//! Any bytes as a dead-letter store's text: the reader returns entries or
//! an error naming a line, never panics; entries it returns write back and
//! read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ossnotify_sinks::dead_letter::read_entries;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = read_entries(data, "fuzz") else {
        return;
    };
    let mut text = Vec::new();
    for e in &entries {
        serde_json::to_writer(&mut text, e).unwrap();
        text.push(b'\n');
    }
    assert_eq!(read_entries(&text[..], "again").unwrap(), entries);
});
