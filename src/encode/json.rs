//! RFC 8259 string escaping: the one place the project escapes JSON.

/// Bytes that must be escaped: control characters, `"` and `\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends `s` as a quoted JSON string.
#[inline]
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// Whether any byte of `b` must be escaped. Branch-free per 16-byte chunk
/// so the compiler vectorizes it; most strings need no escaping at all.
#[inline]
fn needs_escape(b: &[u8]) -> bool {
    let hit = |c: u8| (c < 0x20) | (c == b'"') | (c == b'\\');
    let mut chunks = b.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |acc, &c| acc | hit(c)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| hit(c))
}

/// Appends the escaped contents of `s`, without quotes. Non-ASCII stays
/// UTF-8, which RFC 8259 allows and keeps messages small.
#[inline]
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut v = Vec::new();
        write_json_string(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(esc(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(esc("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(esc("\u{0}\u{1f}"), r#""\u0000\u001f""#);
        assert_eq!(esc("\u{7f}"), "\"\u{7f}\"");
    }

    #[test]
    fn keeps_cjk_and_emoji_as_utf8() {
        assert_eq!(esc("照片/猫🐱.jpg"), "\"照片/猫🐱.jpg\"");
        assert_eq!(esc("\u{2028}"), "\"\u{2028}\"");
    }

    #[test]
    fn every_byte_round_trips_through_serde_json() {
        let all: String = (0u32..0x800).filter_map(char::from_u32).collect();
        let parsed: String = serde_json::from_str(&esc(&all)).unwrap();
        assert_eq!(parsed, all);
    }
}
