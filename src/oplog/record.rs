//! `OpRecord`: the fields of docs/input.md as they arrive, with SLS's conventions
//! (numbers as decimal strings, `"-"` for absent) folded in while decoding.

use simd_json::prelude::*;
use simd_json::tape::Value;
use simd_json::ValueType;

use super::time;

/// One operation-log record. Absent, `null` and `"-"` fields are `None`.
/// Which fields are required depends on the operation, so that is checked
/// later, by [`crate::event::classify`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OpRecord<'a> {
    /// `eventTime` in epoch milliseconds (from `time`, else `__time__`).
    pub time_ms: Option<i64>,
    pub operation: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub object: Option<&'a str>,
    pub objects: Option<Vec<BatchObject<'a>>>,
    pub bucket_location: Option<&'a str>,
    pub owner_id: Option<&'a str>,
    pub requester_id: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub http_status: Option<u16>,
    pub object_size: Option<u64>,
    pub delta_data_size: Option<i64>,
    /// With its surrounding quotes already stripped.
    pub etag: Option<&'a str>,
    pub append_position: Option<u64>,
    pub range: Option<&'a str>,
    pub x_vars: Option<Vec<(&'a str, &'a str)>>,
    pub replication: bool,
    pub overwrite: bool,
    pub live_channel: bool,
}

/// Most elements a batch delete's `objects` may have: ten times what OSS and
/// S3 allow in one request, so that no real log is refused, while a hostile
/// 16 MiB record cannot expand to a million messages.
pub const MAX_BATCH_OBJECTS: usize = 10_000;

/// One element of a batch delete's `objects`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchObject<'a> {
    pub key: &'a str,
    pub size: Option<u64>,
    pub etag: Option<&'a str>,
}

/// Where and why a field was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// Reads a record from a parsed simd-json tape: one pass over the top-level
/// object, SLS's conventions folded in.
pub(super) fn from_tape<'t, 'i>(v: Value<'t, 'i>) -> Result<OpRecord<'i>, Option<FieldError>> {
    let obj = v.as_object().ok_or(None)?;
    let mut r = OpRecord::default();
    let mut unix_seconds = None;
    for (key, val) in obj.iter() {
        let result = match key {
            "objects" => objects(val).map(|o| r.objects = o),
            "x_vars" => x_vars(val).map(|x| r.x_vars = x),
            _ => set_scalar(&mut r, &mut unix_seconds, key, val),
        };
        if let Err((path, reason)) = result {
            return Err(Some(FieldError {
                field: format!("{key}{path}"),
                reason,
            }));
        }
    }
    if r.time_ms.is_none() {
        r.time_ms = unix_seconds;
    }
    Ok(r)
}

/// (path below the field, reason)
type FieldResult = Result<(), (String, String)>;

fn set_scalar<'i>(
    r: &mut OpRecord<'i>,
    unix_seconds: &mut Option<i64>,
    key: &str,
    val: Value<'_, 'i>,
) -> FieldResult {
    let no_path = |reason: String| (String::new(), reason);
    // Real logs carry many fields ossnotify does not read: their values are
    // never looked at.
    let v = || scalar(val);
    match key {
        "time" => r.time_ms = v().time().map_err(no_path)?,
        "__time__" => {
            *unix_seconds = v()
                .int::<i64>()
                .map_err(no_path)?
                .map(|s| s.saturating_mul(1000))
        }
        "operation" => r.operation = v().str().map_err(no_path)?,
        "bucket" => r.bucket = v().str().map_err(no_path)?,
        "object" => r.object = v().str().map_err(no_path)?,
        "bucket_location" => r.bucket_location = v().str().map_err(no_path)?,
        "owner_id" => r.owner_id = v().str().map_err(no_path)?,
        "requester_id" => r.requester_id = v().str().map_err(no_path)?,
        "client_ip" => r.client_ip = v().str().map_err(no_path)?,
        "request_id" => r.request_id = v().str().map_err(no_path)?,
        "http_status" => r.http_status = v().int::<u16>().map_err(no_path)?,
        "object_size" => r.object_size = v().int::<u64>().map_err(no_path)?,
        "delta_data_size" => r.delta_data_size = v().int::<i64>().map_err(no_path)?,
        "etag" => r.etag = v().str().map_err(no_path)?.map(strip_quotes),
        "append_position" => r.append_position = v().int::<u64>().map_err(no_path)?,
        "range" => r.range = v().str().map_err(no_path)?,
        "replication" => r.replication = v().bool().map_err(no_path)?.unwrap_or(false),
        "overwrite" => r.overwrite = v().bool().map_err(no_path)?.unwrap_or(false),
        "live_channel" => r.live_channel = v().bool().map_err(no_path)?.unwrap_or(false),
        // Unknown fields are ignored (docs/input.md).
        _ => {}
    }
    Ok(())
}

/// An ETag loses its quotes only when it both starts and ends with one.
fn strip_quotes(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Any JSON value, reduced to what a scalar field can use.
#[derive(Debug, Clone, Copy)]
enum Scalar<'i> {
    Str(&'i str),
    U(u64),
    I(i64),
    F,
    Bool(bool),
    Null,
    Array,
    Object,
}

fn scalar<'i>(v: Value<'_, 'i>) -> Scalar<'i> {
    match v.value_type() {
        ValueType::Null => Scalar::Null,
        ValueType::Bool => Scalar::Bool(v.as_bool().unwrap_or(false)),
        ValueType::I64 => v.as_i64().map_or(Scalar::F, Scalar::I),
        ValueType::U64 => v.as_u64().map_or(Scalar::F, Scalar::U),
        ValueType::String => v.into_string().map_or(Scalar::Null, Scalar::Str),
        ValueType::Array => Scalar::Array,
        ValueType::Object => Scalar::Object,
        _ => Scalar::F,
    }
}

impl<'i> Scalar<'i> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::U(_) | Scalar::I(_) => "an integer",
            Scalar::F => "a number that is not an integer (or too large for one)",
            Scalar::Bool(_) => "a boolean",
            Scalar::Null => "null",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }

    fn str(self) -> Result<Option<&'i str>, String> {
        match self {
            Scalar::Str("-") | Scalar::Null => Ok(None),
            Scalar::Str(s) => Ok(Some(s)),
            other => Err(format!("expected a string, found {}", other.kind())),
        }
    }

    /// Integers; SLS ships them as decimal strings, so those count too.
    fn int<T: TryFrom<i128>>(self) -> Result<Option<T>, String> {
        let wide: i128 = match self {
            Scalar::Str("-") | Scalar::Null => return Ok(None),
            Scalar::U(n) => n as i128,
            Scalar::I(n) => n as i128,
            Scalar::Str(s) => parse_decimal(s)
                .ok_or_else(|| format!("expected an integer, found the string {s:?}"))?,
            other => return Err(format!("expected an integer, found {}", other.kind())),
        };
        T::try_from(wide)
            .map(Some)
            .map_err(|_| format!("{wide} is out of range"))
    }

    fn bool(self) -> Result<Option<bool>, String> {
        match self {
            Scalar::Str("-") | Scalar::Null => Ok(None),
            Scalar::Bool(b) => Ok(Some(b)),
            Scalar::Str("true") => Ok(Some(true)),
            Scalar::Str("false") => Ok(Some(false)),
            other => Err(format!("expected a boolean, found {}", other.kind())),
        }
    }

    fn time(self) -> Result<Option<i64>, String> {
        match self {
            Scalar::Str("-") | Scalar::Null => Ok(None),
            Scalar::U(_) | Scalar::I(_) => self.int::<i64>(),
            Scalar::Str(s) => time::parse(s).map(Some),
            other => Err(format!(
                "expected a time string or epoch milliseconds, found {}",
                other.kind()
            )),
        }
    }
}

/// An optionally signed decimal integer, at most 38 digits (fits i128).
fn parse_decimal(s: &str) -> Option<i128> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 38 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The value of a field that either fits or yields (path, reason).
type Nested<T> = Result<T, (String, String)>;

fn objects<'i>(v: Value<'_, 'i>) -> Nested<Option<Vec<BatchObject<'i>>>> {
    let Some(list) = v.as_array() else {
        return match scalar(v) {
            Scalar::Null | Scalar::Str("-") => Ok(None),
            other => Err((
                String::new(),
                format!("expected an array, found {}", other.kind()),
            )),
        };
    };
    if list.len() > MAX_BATCH_OBJECTS {
        return Err((
            String::new(),
            format!(
                "has {} elements; a record expands to at most {MAX_BATCH_OBJECTS} events (OSS and S3 delete at most 1000 objects per request)",
                list.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (n, el) in list.iter().enumerate() {
        let at = |field: &str, reason: String| (format!("[{n}]{field}"), reason);
        let Some(obj) = el.as_object() else {
            return Err(at(
                "",
                format!("expected an object, found {}", scalar(el).kind()),
            ));
        };
        let mut o = BatchObject::default();
        let mut has_key = false;
        for (k, val) in obj.iter() {
            let v = scalar(val);
            match k {
                "key" => {
                    o.key = v.str().map_err(|r| at(".key", r))?.unwrap_or("");
                    has_key = matches!(v, Scalar::Str(s) if s != "-");
                }
                "size" => o.size = v.int::<u64>().map_err(|r| at(".size", r))?,
                "etag" => o.etag = v.str().map_err(|r| at(".etag", r))?.map(strip_quotes),
                _ => {}
            }
        }
        if !has_key {
            return Err(at(".key", "required field is missing".into()));
        }
        out.push(o);
    }
    Ok(Some(out))
}

fn x_vars<'i>(v: Value<'_, 'i>) -> Nested<Option<Vec<(&'i str, &'i str)>>> {
    let Some(obj) = v.as_object() else {
        return match scalar(v) {
            Scalar::Null | Scalar::Str("-") => Ok(None),
            other => Err((
                String::new(),
                format!("expected an object, found {}", other.kind()),
            )),
        };
    };
    let mut vars = Vec::with_capacity(obj.len());
    for (k, val) in obj.iter() {
        match scalar(val) {
            Scalar::Str(s) => vars.push((k, s)),
            other => {
                return Err((
                    format!(".{k}"),
                    format!("expected a string, found {}", other.kind()),
                ))
            }
        }
    }
    Ok(Some(vars))
}
