//! `readFrom`/`readTo` of a `GetObject` from its HTTP `Range` (docs/message-format.md).

/// `(readFrom, readTo)` for a read of an object of `size` bytes: the whole
/// object without a range or with one that is unparsable, inverted or
/// multiple; bounds past the object are clamped to `size`.
pub fn read_range(range: Option<&str>, size: u64) -> (u64, u64) {
    let whole = (0, size);
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return whole;
    };
    let Some((a, b)) = spec.split_once('-') else {
        return whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        // bytes=-n: the last n bytes
        (true, false) => match num(b) {
            Some(n) => (size.saturating_sub(n), size),
            None => whole,
        },
        // bytes=a-
        (false, true) => match num(a) {
            Some(from) => (from.min(size), size),
            None => whole,
        },
        // bytes=a-b
        (false, false) => match (num(a), num(b)) {
            (Some(from), Some(to)) if from <= to => {
                (from.min(size), to.saturating_add(1).min(size))
            }
            _ => whole,
        },
        (true, true) => whole,
    }
}

#[cfg(test)]
mod tests {
    use super::read_range;

    #[test]
    fn every_range_form() {
        assert_eq!(read_range(None, 10), (0, 10));
        assert_eq!(read_range(Some("bytes=0-0"), 1), (0, 1));
        assert_eq!(read_range(Some("bytes=2-5"), 10), (2, 6));
        assert_eq!(read_range(Some("bytes=2-"), 10), (2, 10));
        assert_eq!(read_range(Some("bytes=-3"), 10), (7, 10));
        assert_eq!(read_range(Some("bytes=-30"), 10), (0, 10));
        // clamped past the end
        assert_eq!(read_range(Some("bytes=5-100"), 10), (5, 10));
        assert_eq!(read_range(Some("bytes=20-"), 10), (10, 10));
        assert_eq!(read_range(Some("bytes=20-30"), 10), (10, 10));
        // unparsable, inverted, several ranges: the whole object
        for r in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=1-2,4-5",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "0-5",
            "bytes=1-2-3",
            "bytes=-1-2",
        ] {
            assert_eq!(read_range(Some(r), 10), (0, 10), "{r}");
        }
        assert_eq!(
            read_range(Some("bytes=0-18446744073709551615"), 10),
            (0, 10)
        );
    }
}
