//! `OpRecord`: the fields of SPEC §1 as they arrive, with SLS's conventions
//! (numbers as decimal strings, `"-"` for absent) folded in while decoding.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// Deserializes an [`OpRecord`], leaving a precise [`FieldError`] in `error`
/// when a field is wrong (serde's own error type only carries a string).
pub(super) struct RecordSeed<'s> {
    pub error: &'s mut Option<FieldError>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = OpRecord<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<OpRecord<'de>, D::Error> {
        d.deserialize_map(RecordVisitor { error: self.error })
    }
}

struct RecordVisitor<'s> {
    error: &'s mut Option<FieldError>,
}

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = OpRecord<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OpRecord<'de>, A::Error> {
        let mut r = OpRecord::default();
        let mut unix_seconds = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let key = key.0;
            let result = match key {
                "objects" => map.next_value_seed(ObjectsSeed)?.map(|v| r.objects = v),
                "x_vars" => map.next_value_seed(XVarsSeed)?.map(|v| r.x_vars = v),
                _ => {
                    let known = KNOWN_SCALARS.contains(&key);
                    if !known {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let v = map.next_value::<Scalar<'de>>()?;
                    set_scalar(&mut r, &mut unix_seconds, key, v)
                }
            };
            if let Err((path, reason)) = result {
                let field = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{key}{path}")
                };
                *self.error = Some(FieldError { field, reason });
                return Err(de::Error::custom("invalid field"));
            }
        }
        if r.time_ms.is_none() {
            r.time_ms = unix_seconds;
        }
        Ok(r)
    }
}

const KNOWN_SCALARS: &[&str] = &[
    "time",
    "__time__",
    "operation",
    "bucket",
    "object",
    "bucket_location",
    "owner_id",
    "requester_id",
    "client_ip",
    "request_id",
    "http_status",
    "object_size",
    "delta_data_size",
    "etag",
    "append_position",
    "range",
    "replication",
    "overwrite",
    "live_channel",
];

/// (path below the field, reason)
type FieldResult = Result<(), (String, String)>;

fn set_scalar<'de>(
    r: &mut OpRecord<'de>,
    unix_seconds: &mut Option<i64>,
    key: &str,
    v: Scalar<'de>,
) -> FieldResult {
    let no_path = |reason: String| (String::new(), reason);
    match key {
        "time" => r.time_ms = v.time().map_err(no_path)?,
        "__time__" => {
            *unix_seconds = v
                .int::<i64>()
                .map_err(no_path)?
                .map(|s| s.saturating_mul(1000))
        }
        "operation" => r.operation = v.str().map_err(no_path)?,
        "bucket" => r.bucket = v.str().map_err(no_path)?,
        "object" => r.object = v.str().map_err(no_path)?,
        "bucket_location" => r.bucket_location = v.str().map_err(no_path)?,
        "owner_id" => r.owner_id = v.str().map_err(no_path)?,
        "requester_id" => r.requester_id = v.str().map_err(no_path)?,
        "client_ip" => r.client_ip = v.str().map_err(no_path)?,
        "request_id" => r.request_id = v.str().map_err(no_path)?,
        "http_status" => r.http_status = v.int::<u16>().map_err(no_path)?,
        "object_size" => r.object_size = v.int::<u64>().map_err(no_path)?,
        "delta_data_size" => r.delta_data_size = v.int::<i64>().map_err(no_path)?,
        "etag" => r.etag = v.str().map_err(no_path)?.map(strip_quotes),
        "append_position" => r.append_position = v.int::<u64>().map_err(no_path)?,
        "range" => r.range = v.str().map_err(no_path)?,
        "replication" => r.replication = v.bool().map_err(no_path)?.unwrap_or(false),
        "overwrite" => r.overwrite = v.bool().map_err(no_path)?.unwrap_or(false),
        "live_channel" => r.live_channel = v.bool().map_err(no_path)?.unwrap_or(false),
        _ => unreachable!("KNOWN_SCALARS and set_scalar list the same fields"),
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

/// A map key, borrowed from the buffer.
struct Key<'de>(&'de str);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, reduced to what a scalar field can use.
#[derive(Debug, Clone, Copy)]
enum Scalar<'de> {
    Str(&'de str),
    U(u64),
    I(i64),
    F,
    Bool(bool),
    Null,
    Array,
    Object,
}

impl<'de> Scalar<'de> {
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

    fn str(self) -> Result<Option<&'de str>, String> {
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

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::U(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::I(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::F)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// The value of a field that either fits or yields (path, reason); the
/// outer `Result` is the parser's own error.
type Nested<T> = Result<T, (String, String)>;

struct ObjectsSeed;

impl<'de> DeserializeSeed<'de> for ObjectsSeed {
    type Value = Nested<Option<Vec<BatchObject<'de>>>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ObjectsVisitor)
    }
}

struct ObjectsVisitor;

impl<'de> Visitor<'de> for ObjectsVisitor {
    type Value = Nested<Option<Vec<BatchObject<'de>>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(None))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(if v == "-" {
            Ok(None)
        } else {
            Err((String::new(), "expected an array, found a string".into()))
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut failure = None;
        while let Some(el) = seq.next_element::<Element<'de>>()? {
            if failure.is_some() {
                continue; // keep consuming so the parser stays in step
            }
            match el.0 {
                Ok(o) => out.push(o),
                Err((path, reason)) => failure = Some((format!("[{}]{path}", out.len()), reason)),
            }
        }
        Ok(match failure {
            Some(f) => Err(f),
            None => Ok(Some(out)),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err((
            String::new(),
            "expected an array, found an object".into(),
        )))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an array, found an integer".into(),
        )))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an array, found an integer".into(),
        )))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an array, found a number".into(),
        )))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an array, found a boolean".into(),
        )))
    }
}

/// One `objects` element.
struct Element<'de>(Nested<BatchObject<'de>>);

impl<'de> de::Deserialize<'de> for Element<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object {\"key\", \"size\", \"etag\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element<'de>, A::Error> {
        let mut key = None;
        let mut size = None;
        let mut etag = None;
        let mut failure: Option<(String, String)> = None;
        while let Some(k) = map.next_key::<Key<'de>>()? {
            let field = k.0;
            if !matches!(field, "key" | "size" | "etag") {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let v = map.next_value::<Scalar<'de>>()?;
            if failure.is_some() {
                continue;
            }
            let r = match field {
                "key" => v.str().map(|s| key = s),
                "size" => v.int::<u64>().map(|n| size = n),
                _ => v.str().map(|s| etag = s.map(strip_quotes)),
            };
            if let Err(reason) = r {
                failure = Some((format!(".{field}"), reason));
            }
        }
        if let Some(f) = failure {
            return Ok(Element(Err(f)));
        }
        Ok(Element(match key {
            Some(key) => Ok(BatchObject { key, size, etag }),
            None => Err((".key".into(), "required field is missing".into())),
        }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element(Err((
            String::new(),
            "expected an object, found an array".into(),
        ))))
    }
    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Element<'de>, E> {
        Ok(Element(Err((
            String::new(),
            "expected an object, found a string".into(),
        ))))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Element<'de>, E> {
        Ok(Element(Err((
            String::new(),
            "expected an object, found an integer".into(),
        ))))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Element<'de>, E> {
        Ok(Element(Err((
            String::new(),
            "expected an object, found an integer".into(),
        ))))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Element<'de>, E> {
        Ok(Element(Err((
            String::new(),
            "expected an object, found a number".into(),
        ))))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Element<'de>, E> {
        Ok(Element(Err((
            String::new(),
            "expected an object, found a boolean".into(),
        ))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Element<'de>, E> {
        Ok(Element(Err((
            String::new(),
            "expected an object, found null".into(),
        ))))
    }
}

struct XVarsSeed;

impl<'de> DeserializeSeed<'de> for XVarsSeed {
    type Value = Nested<Option<Vec<(&'de str, &'de str)>>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(XVarsVisitor)
    }
}

struct XVarsVisitor;

impl<'de> Visitor<'de> for XVarsVisitor {
    type Value = Nested<Option<Vec<(&'de str, &'de str)>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(None))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(if v == "-" {
            Ok(None)
        } else {
            Err((String::new(), "expected an object, found a string".into()))
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut vars = Vec::with_capacity(map.size_hint().unwrap_or(2));
        let mut failure = None;
        while let Some(k) = map.next_key::<Key<'de>>()? {
            let v = map.next_value::<Scalar<'de>>()?;
            match v {
                Scalar::Str(s) => vars.push((k.0, s)),
                other if failure.is_none() => {
                    failure = Some((
                        format!(".{}", k.0),
                        format!("expected a string, found {}", other.kind()),
                    ))
                }
                _ => {}
            }
        }
        Ok(match failure {
            Some(f) => Err(f),
            None => Ok(Some(vars)),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err((
            String::new(),
            "expected an object, found an array".into(),
        )))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an object, found an integer".into(),
        )))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an object, found an integer".into(),
        )))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an object, found a number".into(),
        )))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err((
            String::new(),
            "expected an object, found a boolean".into(),
        )))
    }
}
