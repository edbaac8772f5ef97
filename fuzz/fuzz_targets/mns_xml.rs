//! Any text as MNS XML: the response parser (what the sinks read from MNS
//! or a proxy) and the request parser (what mns-dev reads from clients)
//! must return a value or an error, never panic; a request that parses
//! writes back to XML that parses to the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ossnotify_sinks::mns::xml;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = xml::parse_response(text);
    if let Ok(ms) = xml::parse_request(text) {
        if ms.is_empty() {
            return;
        }
        let again = xml::parse_request(&xml::batch_request(&ms)).expect("our own XML parses");
        assert_eq!(again, ms);
    }
});
