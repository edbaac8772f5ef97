//! Any text as a config file: loading must return a config or located
//! errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ossnotify::config::load_str(
            std::path::Path::new("fuzz.toml"),
            text,
            &|_| Some("x".into()),
        );
    }
});
