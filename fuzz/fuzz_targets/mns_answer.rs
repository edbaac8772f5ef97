//! The error classifier: any HTTP status and body, read as an MNS answer,
//! gives a parsed answer or a classed failure, never a panic. A body that
//! is not MNS XML is classed by its status alone (429 throttles, 408 and
//! 5xx retry, everything else is permanent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ossnotify_sinks::mns::client::{read_answer, Failure};
use ossnotify_sinks::mns::xml;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let Ok(text) = std::str::from_utf8(&data[2..]) else {
        return;
    };
    let answer = read_answer(status, text);
    if xml::parse_response(text).is_err() {
        let f = answer.expect_err("a body that is not MNS XML is a failure");
        let want = match status {
            429 => "throttled",
            408 | 500.. => "transient",
            _ => "permanent",
        };
        let got = match f {
            Failure::Throttled { .. } => "throttled",
            Failure::Transient { .. } => "transient",
            Failure::Permanent { .. } => "permanent",
        };
        assert_eq!(got, want, "status {status}");
    }
});
