//! Splitting a payload into records and decoding each with simd-json, reusing
//! the parser's buffers between records.

use simd_json::{ErrorType, Tape, INPUT_PADDING};

use super::record::{from_tape, OpRecord};

/// Records larger than this are refused rather than parsed (docs/input.md: huge
/// values must not take the process down).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Why a record is invalid. Every variant names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {reason} at byte {at}")]
    NotJson { reason: String, at: usize },
    #[error("not valid UTF-8")]
    InvalidUtf8,
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("record is {len} bytes, over the limit of {MAX_RECORD_BYTES}")]
    TooLarge { len: usize },
    #[error("field `{field}`: {reason}")]
    Field { field: String, reason: String },
    #[error("field `{0}`: required field is missing")]
    Missing(&'static str),
}

impl DecodeError {
    /// A short stable name for metrics and dead-letter entries.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NotJson { .. } => "not_json",
            DecodeError::InvalidUtf8 => "invalid_utf8",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Field { .. } => "bad_field",
            DecodeError::Missing(_) => "missing_field",
        }
    }
}

/// Decodes records one at a time; keeps its buffers (the padded copy of the
/// record, simd-json's scratch, the tape) between calls so the hot path does
/// not allocate.
pub struct Decoder {
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
    tape: Option<Tape<'static>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            scratch: Vec::with_capacity(4096),
            buffers: simd_json::Buffers::new(4096),
            tape: Some(Tape(Vec::with_capacity(256))),
        }
    }
}

impl Decoder {
    /// Decodes one JSON object. The record borrows from the decoder's copy of
    /// `line` (simd-json unescapes strings in place).
    pub fn decode<'d>(&'d mut self, line: &[u8]) -> Result<OpRecord<'d>, DecodeError> {
        if line.len() > MAX_RECORD_BYTES {
            return Err(DecodeError::TooLarge { len: line.len() });
        }
        let Decoder {
            scratch,
            buffers,
            tape,
        } = self;
        scratch.clear();
        scratch.extend_from_slice(line);
        // Padded here so simd-json need not copy the record again.
        scratch.resize(line.len() + INPUT_PADDING, 0);
        let mut t: Tape<'d> = tape.take().unwrap_or_else(Tape::null).reset();
        let parsed = simd_json::fill_tape_padded(scratch, line.len(), buffers, &mut t);
        let result = match parsed {
            Ok(()) => from_tape(t.as_value()).map_err(|e| match e {
                Some(f) => DecodeError::Field {
                    field: f.field,
                    reason: f.reason,
                },
                None => DecodeError::NotAnObject,
            }),
            Err(e) => Err(match e.error() {
                ErrorType::InvalidUtf8 => DecodeError::InvalidUtf8,
                other => DecodeError::NotJson {
                    reason: describe(other),
                    at: e.index(),
                },
            }),
        };
        *tape = Some(t.reset());
        result
    }
}

/// simd-json's error kinds in words a user reads.
fn describe(e: &ErrorType) -> String {
    match e {
        ErrorType::Eof => "unexpected end of input".into(),
        ErrorType::Syntax => "syntax error (malformed or truncated)".into(),
        ErrorType::TrailingData => "data after the end of the object".into(),
        ErrorType::UnterminatedString => "unterminated string".into(),
        ErrorType::InvalidEscape | ErrorType::InvalidUnicodeEscape => "invalid escape".into(),
        ErrorType::InvalidUnicodeCodepoint => "invalid unicode code point".into(),
        ErrorType::InvalidNumber | ErrorType::InvalidExponent => "invalid number".into(),
        ErrorType::DepthLimitExceeded => "nested too deeply".into(),
        other => format!("{other:?}"),
    }
}

/// The records of one payload: a single object, or newline-delimited objects
/// with blank lines skipped. Yields (1-based line number, line).
pub struct Lines<'p> {
    rest: &'p [u8],
    line: usize,
    /// Known to be one line: not searched for newlines.
    one: bool,
}

impl<'p> Lines<'p> {
    pub fn new(payload: &'p [u8]) -> Self {
        Lines {
            rest: payload,
            line: 0,
            one: false,
        }
    }

    /// A payload that is one line, as a line source's are (read up to its
    /// newline): yielded less that newline, without a search through it.
    pub fn one(line: &'p [u8]) -> Self {
        Lines {
            rest: line.strip_suffix(b"\n").unwrap_or(line),
            line: 0,
            one: true,
        }
    }
}

impl<'p> Iterator for Lines<'p> {
    type Item = (usize, &'p [u8]);

    fn next(&mut self) -> Option<(usize, &'p [u8])> {
        if self.one {
            let line = std::mem::take(&mut self.rest);
            self.line += 1;
            return (!line.iter().all(u8::is_ascii_whitespace)).then_some((self.line, line));
        }
        while !self.rest.is_empty() {
            self.line += 1;
            let (line, rest) = match memchr::memchr(b'\n', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some((self.line, line));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Result<OpRecord<'static>, DecodeError> {
        // Leak one decoder per call: tests only.
        let d: &'static mut Decoder = Box::leak(Box::default());
        d.decode(s.as_bytes())
    }

    fn field_err(s: &str) -> (String, String) {
        match decode(s) {
            Err(DecodeError::Field { field, reason }) => (field, reason),
            other => panic!("expected a field error for {s}, got {other:?}"),
        }
    }

    #[test]
    fn decodes_every_field() {
        let r = decode(
            r#"{"time":"2016-07-01T11:17:30Z","operation":"GetObject","bucket":"b","object":"k",
            "objects":[{"key":"a","size":3,"etag":"\"E\""},{"key":"b"}],
            "bucket_location":"oss-cn-shenzhen","owner_id":"o","requester_id":"r","client_ip":"1.2.3.4",
            "request_id":"R","http_status":200,"object_size":"10","delta_data_size":-4,"etag":"\"0CC\"",
            "append_position":7,"range":"bytes=0-0","x_vars":{"x:a":"1"},"replication":"true",
            "overwrite":true,"live_channel":false,"unknown":{"deep":[1,2,{"x":null}]}}"#,
        )
        .unwrap();
        assert_eq!(r.time_ms, Some(1_467_371_850_000));
        assert_eq!(r.operation, Some("GetObject"));
        assert_eq!(r.object_size, Some(10));
        assert_eq!(r.delta_data_size, Some(-4));
        assert_eq!(r.etag, Some("0CC"));
        assert_eq!(r.append_position, Some(7));
        assert_eq!(r.x_vars, Some(vec![("x:a", "1")]));
        assert!(r.replication && r.overwrite && !r.live_channel);
        let objs = r.objects.unwrap();
        assert_eq!(objs[0].etag, Some("E"));
        assert_eq!(objs[1].size, None);
    }

    #[test]
    fn sls_conventions_dash_null_and_strings() {
        let r = decode(
            r#"{"__time__":"1467371850","time":"-","object":"-","object_size":"-","etag":null,"http_status":"204","x_vars":"-"}"#,
        )
        .unwrap();
        assert_eq!(r.time_ms, Some(1_467_371_850_000));
        assert_eq!(r.object, None);
        assert_eq!(r.object_size, None);
        assert_eq!(r.etag, None);
        assert_eq!(r.http_status, Some(204));
        assert_eq!(r.x_vars, None);
    }

    #[test]
    fn etag_quotes_are_stripped_only_in_pairs() {
        assert_eq!(decode(r#"{"etag":"\"abc"}"#).unwrap().etag, Some("\"abc"));
        assert_eq!(decode(r#"{"etag":"\""}"#).unwrap().etag, Some("\""));
        assert_eq!(decode(r#"{"etag":"\"\""}"#).unwrap().etag, Some(""));
    }

    #[test]
    fn each_malformed_class_has_its_error() {
        assert!(matches!(
            decode("{\"a\":"),
            Err(DecodeError::NotJson { .. })
        ));
        assert!(matches!(
            decode("{\"bucket\":\"b"),
            Err(DecodeError::NotJson { .. })
        ));
        assert!(matches!(
            decode("not json"),
            Err(DecodeError::NotJson { .. })
        ));
        assert!(matches!(decode("[1,2]"), Err(DecodeError::NotAnObject)));
        assert!(matches!(decode("\"str\""), Err(DecodeError::NotAnObject)));
        assert!(matches!(decode("42"), Err(DecodeError::NotAnObject)));
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(b"{\"bucket\":\"\xff\xfe\"}").unwrap_err(),
            DecodeError::InvalidUtf8
        );
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert!(matches!(d.decode(&huge), Err(DecodeError::TooLarge { .. })));
        assert_eq!(field_err(r#"{"http_status":"abc"}"#).0, "http_status");
        assert!(field_err(r#"{"http_status":"abc"}"#).1.contains("\"abc\""));
        assert!(field_err(r#"{"http_status":70000}"#)
            .1
            .contains("out of range"));
        assert!(field_err(r#"{"object_size":-1}"#)
            .1
            .contains("out of range"));
        assert!(field_err(r#"{"object_size":1.5}"#)
            .1
            .contains("not an integer"));
        assert!(field_err(r#"{"object_size":99999999999999999999999}"#).0 == "object_size");
        assert_eq!(
            field_err(r#"{"bucket":5}"#),
            (
                "bucket".into(),
                "expected a string, found an integer".into()
            )
        );
        assert_eq!(
            field_err(r#"{"bucket":["a"]}"#).1,
            "expected a string, found an array"
        );
        assert_eq!(field_err(r#"{"replication":"yes"}"#).0, "replication");
        assert_eq!(field_err(r#"{"time":"noon"}"#).0, "time");
        assert_eq!(field_err(r#"{"time":true}"#).0, "time");
        assert_eq!(field_err(r#"{"objects":{"key":"a"}}"#).0, "objects");
        assert_eq!(
            field_err(r#"{"objects":[{"key":"a"},{"size":1}]}"#).0,
            "objects[1].key"
        );
        assert_eq!(
            field_err(r#"{"objects":[{"key":"a","size":"x"}]}"#).0,
            "objects[0].size"
        );
        assert_eq!(field_err(r#"{"objects":[3]}"#).0, "objects[0]");
        let many = format!(
            r#"{{"objects":[{}{{"key":"k"}}]}}"#,
            r#"{"key":"k"},"#.repeat(crate::oplog::MAX_BATCH_OBJECTS)
        );
        assert_eq!(
            field_err(&many),
            (
                "objects".into(),
                "has 10001 elements; a record expands to at most 10000 events (OSS and S3 delete at most 1000 objects per request)".into()
            )
        );
        assert_eq!(field_err(r#"{"x_vars":{"x:a":1}}"#).0, "x_vars.x:a");
        assert_eq!(field_err(r#"{"x_vars":[1]}"#).0, "x_vars");
    }

    #[test]
    fn decoder_is_reusable_after_errors() {
        let mut d = Decoder::default();
        assert!(d.decode(b"{").is_err());
        assert!(d.decode(br#"{"bucket":7}"#).is_err());
        assert_eq!(d.decode(br#"{"bucket":"b"}"#).unwrap().bucket, Some("b"));
    }

    #[test]
    fn lines_skip_blanks_and_count_from_one() {
        let p = b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n{\"c\":3}";
        let got: Vec<_> = Lines::new(p).map(|(n, l)| (n, l.len())).collect();
        assert_eq!(got, vec![(1, 7), (4, 8), (5, 7)]);
        assert_eq!(Lines::new(b"").count(), 0);
        assert_eq!(Lines::new(b"\n\n").count(), 0);
        let one: Vec<_> = Lines::one(b"{\"a\":1}\r\n").collect();
        assert_eq!(one, vec![(1, &b"{\"a\":1}\r"[..])]);
        assert_eq!(Lines::one(b" \n").count(), 0);
        assert_eq!(Lines::one(b"").count(), 0);
    }
}
