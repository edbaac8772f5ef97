//! Event times: parsing the three input spellings (docs/input.md) into epoch
//! milliseconds, and writing OSS's `YYYY-MM-DDTHH:MM:SS.mmmZ`.
//!
//! Hand-written because it is on the hot path and the formats are fixed;
//! the civil-date arithmetic is Howard Hinnant's `days_from_civil`.

/// Parses RFC 3339 (`2016-07-01T19:17:30.123+08:00`), OSS log time
/// (`[03/Jan/2021:14:59:49 +0800]`, brackets optional) or a decimal string of
/// epoch milliseconds. Fractions beyond milliseconds are truncated.
pub fn parse(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let err = || {
        format!("unrecognised time {s:?}; expected RFC 3339, OSS log time (03/Jan/2021:14:59:49 +0800) or epoch milliseconds")
    };
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        return s.parse().map_err(|_| err());
    }
    if b.len() >= 5 && b[4] == b'-' {
        return parse_rfc3339(b).ok_or_else(err);
    }
    let inner = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(s);
    parse_oss_log(inner.as_bytes()).ok_or_else(err)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return None;
    }
    let mut n = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as i64;
    }
    Some(n)
}

/// `±HH:MM`, `±HHMM` or `Z` → offset in seconds east of UTC.
fn parse_offset(b: &[u8]) -> Option<i64> {
    match b {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            Some(if *sign == b'-' { -off } else { off })
        }
        _ => None,
    }
}

fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let seconds = local_seconds(b[..19].try_into().expect("19 bytes"))?;
    let mut rest = &b[19..];
    let mut millis = 0;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let mut ms = 0;
        for i in 0..3 {
            ms = ms * 10
                + tail
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |c| (c - b'0') as i64);
        }
        millis = ms;
        rest = &tail[n..];
    }
    let offset = parse_offset(rest)?;
    Some((seconds - offset) * 1000 + millis)
}

/// `YYYY-MM-DDTHH:MM:SS` (checked for its separators) as seconds since the
/// epoch, as if it were UTC. A log's records come in time order, many in
/// the same second, so the last one is remembered per thread: most records
/// skip the calendar arithmetic.
fn local_seconds(head: &[u8; 19]) -> Option<i64> {
    thread_local! {
        static LAST: std::cell::Cell<([u8; 19], i64)> = const { std::cell::Cell::new(([0; 19], 0)) };
    }
    let (last, seconds) = LAST.get();
    // The zeroed start can never equal a checked head (its separators).
    if last == *head {
        return Some(seconds);
    }
    let (y, mo, d) = (
        digits(&head[0..4])?,
        digits(&head[5..7])?,
        digits(&head[8..10])?,
    );
    let (h, mi, sec) = (
        digits(&head[11..13])?,
        digits(&head[14..16])?,
        digits(&head[17..19])?,
    );
    let seconds = civil_seconds(y, mo, d, h, mi, sec)?;
    LAST.set((*head, seconds));
    Some(seconds)
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn parse_oss_log(b: &[u8]) -> Option<i64> {
    // DD/Mon/YYYY:HH:MM:SS +ZZZZ
    if b.len() < 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let d = digits(&b[0..2])?;
    let mo = MONTHS.iter().position(|m| m[..] == b[3..6])? as i64 + 1;
    let y = digits(&b[7..11])?;
    if b[14] != b':' || b[17] != b':' {
        return None;
    }
    let (h, mi, sec) = (
        digits(&b[12..14])?,
        digits(&b[15..17])?,
        digits(&b[18..20])?,
    );
    let offset = parse_offset(&b[21..])?;
    Some((civil_seconds(y, mo, d, h, mi, sec)? - offset) * 1000)
}

/// A civil date and time, checked, as seconds since the epoch.
fn civil_seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > dim[(mo - 1) as usize] || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    // A leap second (:60) is folded into the next second, as most clocks do.
    Some(days * 86400 + h * 3600 + mi * 60 + s)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as text (see [`write_utc`]).
pub fn utc(millis: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_utc(millis, &mut out);
    String::from_utf8(out).expect("ASCII")
}

/// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` (24 bytes). Years outside 0..=9999 are
/// clamped to that range, which RFC 3339 requires.
pub fn write_utc(millis: i64, out: &mut Vec<u8>) {
    const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let millis = millis.clamp(MIN, MAX);
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400) as u32;
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y as u32, 4);
    put(5, mo, 2);
    put(8, d, 2);
    put(11, sod / 3600, 2);
    put(14, sod / 60 % 60, 2);
    put(17, sod % 60, 2);
    put(20, ms, 3);
    out.extend_from_slice(&buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ms: i64) -> String {
        let mut v = Vec::new();
        write_utc(ms, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn rfc3339_any_offset_to_utc() {
        assert_eq!(
            fmt(parse("2016-07-01T11:17:30Z").unwrap()),
            "2016-07-01T11:17:30.000Z"
        );
        assert_eq!(
            fmt(parse("2016-07-01T19:17:30.000+08:00").unwrap()),
            "2016-07-01T11:17:30.000Z"
        );
        assert_eq!(
            fmt(parse("2016-07-01T01:17:30.1234567-10:00").unwrap()),
            "2016-07-01T11:17:30.123Z"
        );
        assert_eq!(
            fmt(parse("2016-07-01 11:17:30.5Z").unwrap()),
            "2016-07-01T11:17:30.500Z"
        );
        assert_eq!(
            fmt(parse("2024-02-29T23:59:59.999+0000").unwrap()),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            fmt(parse("2000-01-01T00:30:00+01:00").unwrap()),
            "1999-12-31T23:30:00.000Z"
        );
    }

    #[test]
    fn oss_log_time_with_and_without_brackets() {
        let a = parse("03/Jan/2021:14:59:49 +0800").unwrap();
        let b = parse("[03/Jan/2021:14:59:49 +0800]").unwrap();
        assert_eq!(a, b);
        assert_eq!(fmt(a), "2021-01-03T06:59:49.000Z");
        assert_eq!(
            fmt(parse("31/Dec/2020:23:00:00 -0130").unwrap()),
            "2021-01-01T00:30:00.000Z"
        );
    }

    #[test]
    fn epoch_millis_string() {
        assert_eq!(
            fmt(parse("1467371850000").unwrap()),
            "2016-07-01T11:17:30.000Z"
        );
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "yesterday",
            "2016-13-01T00:00:00Z",
            "2016-02-30T00:00:00Z",
            "2016-07-01T11:17:30",
            "2016-07-01T11:17:30+8",
            "2016-07-01T25:17:30Z",
            "2016-07-01T11:17:30.Z",
            "03/Foo/2021:14:59:49 +0800",
            "03/Jan/2021:14:59:49",
            "99999999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn round_trips_every_day_of_four_centuries() {
        for day in (-146_097 * 2..146_097 * 2).step_by(7) {
            let ms = day as i64 * 86_400_000 + 45_296_789;
            assert_eq!(parse(&fmt(ms)).unwrap(), ms);
        }
    }
}
