//! From an operation-log record to the events it produces (docs/events.md): the
//! operation table, 2xx-only, replication, the RTMP-ingest skip, batch-delete
//! fan-out, and which fields an event needs.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;

use super::types::{Category, EventType};
use crate::oplog::{BatchObject, DecodeError, KeyEncoding, OpRecord};

/// Why a valid record produces no event. Counted as skipped, not invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The operation is not in the table (HeadObject, bucket operations, …).
    Operation(String),
    /// Only 2xx statuses produce events.
    Status(u16),
    /// A replicated operation that has no replication event.
    Replicated(EventType),
    /// RTMP ingest's `.ts` / `.m3u8` objects.
    LiveChannelSegment,
    /// A batch delete with neither `objects` nor `object`.
    EmptyBatch,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Operation(op) => write!(f, "operation {op:?} produces no event"),
            Skip::Status(s) => write!(f, "http_status {s} is not 2xx"),
            Skip::Replicated(t) => write!(f, "a replicated {} has no replication event", t.name()),
            Skip::LiveChannelSegment => {
                f.write_str("OSS sends no notification for live-channel .ts/.m3u8 objects")
            }
            Skip::EmptyBatch => f.write_str("batch delete with no objects"),
        }
    }
}

/// A record that produces events, with every field the message needs.
#[derive(Debug, Clone)]
pub struct Operation<'r> {
    pub event_type: EventType,
    pub time_ms: i64,
    pub bucket: &'r str,
    /// `bucket_location` without its `oss-` prefix.
    pub region: &'r str,
    pub owner_id: &'r str,
    pub requester_id: &'r str,
    pub client_ip: &'r str,
    pub request_id: &'r str,
    pub append_position: u64,
    pub range: Option<&'r str>,
    pub x_vars: Option<&'r [(&'r str, &'r str)]>,
    objects: Objects<'r>,
    key_encoding: KeyEncoding,
    live_channel: bool,
}

#[derive(Debug, Clone)]
enum Objects<'r> {
    One {
        key: &'r str,
        size: u64,
        delta: i64,
        etag: &'r str,
    },
    Batch(&'r [BatchObject<'r>]),
}

/// One object an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef<'r> {
    /// The decoded key.
    pub key: Cow<'r, str>,
    pub size: u64,
    pub delta_size: i64,
    pub etag: &'r str,
}

fn base_event(op: &str) -> Option<EventType> {
    use EventType::*;
    Some(match op {
        "PutObject" => PutObject,
        "PostObject" => PostObject,
        "CopyObject" => CopyObject,
        "InitiateMultipartUpload" => InitiateMultipartUpload,
        "UploadPart" => UploadPart,
        "UploadPartCopy" => UploadPartCopy,
        "CompleteMultipartUpload" | "CompleteUploadPart" => CompleteMultipartUpload,
        "AppendObject" => AppendObject,
        "PutObjectSymlink" | "PutSymlink" => PutSymlink,
        "GetObject" => GetObject,
        "DeleteObject" => DeleteObject,
        "DeleteObjects" | "DeleteMultipleObjects" => DeleteObjects,
        "AbortMultipartUpload" | "AbortMultiPartUpload" => AbortMultipartUpload,
        "UpdateObjectMeta" => UpdateObjectMeta,
        "ChangeStorageClass" => ChangeStorageClass,
        "FinishRestore" => FinishRestore,
        _ => return None,
    })
}

fn replication_event(base: EventType, overwrite: bool) -> Option<EventType> {
    use EventType::*;
    match base {
        DeleteObject | DeleteObjects => Some(ReplicationRemoved),
        PutObject
        | PostObject
        | CopyObject
        | CompleteMultipartUpload
        | AppendObject
        | PutSymlink => Some(if overwrite {
            ReplicationModified
        } else {
            ReplicationCreated
        }),
        _ => None,
    }
}

/// +size for writes, −size for deletes, 0 otherwise (the `delta_data_size`
/// default, docs/input.md).
fn default_delta(t: EventType, size: u64) -> i64 {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    match t.category() {
        Category::ObjectCreated => size,
        Category::ObjectRemoved => -size,
        Category::ObjectReplication if t == EventType::ReplicationRemoved => -size,
        Category::ObjectReplication => size,
        _ => 0,
    }
}

fn required<T>(v: Option<T>, name: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::Missing(name))
}

/// What a record yields: events, a reason to skip it, or why it is invalid.
#[derive(Debug)]
pub enum Mapped<'r> {
    Events(Operation<'r>),
    Skipped(Skip),
    Invalid(DecodeError),
}

/// Classifies a decoded record (docs/events.md).
pub fn events_of<'r>(rec: &'r OpRecord<'r>, key_encoding: KeyEncoding) -> Mapped<'r> {
    match classify(rec, key_encoding) {
        Ok(Ok(op)) => Mapped::Events(op),
        Ok(Err(skip)) => Mapped::Skipped(skip),
        Err(e) => Mapped::Invalid(e),
    }
}

fn classify<'r>(
    rec: &'r OpRecord<'r>,
    key_encoding: KeyEncoding,
) -> Result<Result<Operation<'r>, Skip>, DecodeError> {
    let op = required(rec.operation, "operation")?;
    let status = required(rec.http_status, "http_status")?;
    let Some(base) = base_event(op) else {
        return Ok(Err(Skip::Operation(op.to_owned())));
    };
    if !(200..300).contains(&status) {
        return Ok(Err(Skip::Status(status)));
    }
    let event_type = if rec.replication {
        match replication_event(base, rec.overwrite) {
            Some(t) => t,
            None => return Ok(Err(Skip::Replicated(base))),
        }
    } else {
        base
    };
    let time_ms = required(rec.time_ms, "time")?;
    let bucket = required(rec.bucket, "bucket")?;
    let location = required(rec.bucket_location, "bucket_location")?;
    let owner_id = required(rec.owner_id, "owner_id")?;
    let request_id = required(rec.request_id, "request_id")?;
    let objects = if base == EventType::DeleteObjects {
        match (&rec.objects, rec.object) {
            (Some(list), _) if !list.is_empty() => Objects::Batch(list),
            (_, Some(key)) => single(rec, event_type, key),
            _ => return Ok(Err(Skip::EmptyBatch)),
        }
    } else {
        single(rec, event_type, required(rec.object, "object")?)
    };
    // Keys are checked once here so that iterating objects cannot fail.
    match &objects {
        Objects::One { key, .. } => check_key(key, key_encoding, "object")?,
        Objects::Batch(list) => {
            for (i, o) in list.iter().enumerate() {
                check_key(o.key, key_encoding, "objects[].key").map_err(|e| match e {
                    DecodeError::Field { reason, .. } => DecodeError::Field {
                        field: format!("objects[{i}].key"),
                        reason,
                    },
                    other => other,
                })?;
            }
        }
    }
    let op = Operation {
        event_type,
        time_ms,
        bucket,
        region: location.strip_prefix("oss-").unwrap_or(location),
        owner_id,
        requester_id: rec.requester_id.unwrap_or(""),
        client_ip: rec.client_ip.unwrap_or(""),
        request_id,
        append_position: rec.append_position.unwrap_or(0),
        range: rec.range,
        x_vars: rec.x_vars.as_deref(),
        objects,
        key_encoding,
        live_channel: rec.live_channel,
    };
    if let Objects::One { .. } = op.objects {
        if op.objects().next().is_none() {
            return Ok(Err(Skip::LiveChannelSegment));
        }
    }
    Ok(Ok(op))
}

fn single<'r>(rec: &OpRecord<'r>, t: EventType, key: &'r str) -> Objects<'r> {
    let size = rec.object_size.unwrap_or(0);
    let delta = match t {
        EventType::GetObject => 0,
        _ => rec
            .delta_data_size
            .unwrap_or_else(|| default_delta(t, size)),
    };
    Objects::One {
        key,
        size,
        delta,
        etag: rec.etag.unwrap_or(""),
    }
}

fn check_key(key: &str, enc: KeyEncoding, field: &str) -> Result<(), DecodeError> {
    if enc == KeyEncoding::Url {
        if let Err(e) = percent_decode_str(key).decode_utf8() {
            return Err(DecodeError::Field {
                field: field.to_owned(),
                reason: format!("percent-decoded key is not UTF-8: {e}"),
            });
        }
    }
    Ok(())
}

fn decode_key(key: &str, enc: KeyEncoding) -> Cow<'_, str> {
    match enc {
        KeyEncoding::Raw => Cow::Borrowed(key),
        // Checked by `check_key` when the Operation was built.
        KeyEncoding::Url => percent_decode_str(key)
            .decode_utf8()
            .unwrap_or(Cow::Borrowed(key)),
    }
}

/// `.ts` and `.m3u8` in any letter case.
fn is_live_segment(key: &str) -> bool {
    let b = key.as_bytes();
    let ends = |suffix: &[u8]| {
        b.len() >= suffix.len() && b[b.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    ends(b".ts") || ends(b".m3u8")
}

impl<'r> Operation<'r> {
    /// The objects this operation is about, one event each, without the
    /// live-channel segments OSS does not notify about.
    pub fn objects(&self) -> impl Iterator<Item = ObjectRef<'r>> + '_ {
        let enc = self.key_encoding;
        let (one, batch) = match &self.objects {
            Objects::One {
                key,
                size,
                delta,
                etag,
            } => (
                Some(ObjectRef {
                    key: decode_key(key, enc),
                    size: *size,
                    delta_size: *delta,
                    etag,
                }),
                &[][..],
            ),
            Objects::Batch(list) => (None, *list),
        };
        let live = self.live_channel;
        one.into_iter()
            .chain(batch.iter().map(move |o| {
                let size = o.size.unwrap_or(0);
                ObjectRef {
                    key: decode_key(o.key, enc),
                    size,
                    delta_size: -i64::try_from(size).unwrap_or(i64::MAX),
                    etag: o.etag.unwrap_or(""),
                }
            }))
            .filter(move |o| !(live && is_live_segment(&o.key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oplog::Decoder;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "time": "2016-07-01T11:17:30Z", "operation": "PutObject", "bucket": "b",
            "object": "k", "bucket_location": "oss-cn-shenzhen", "owner_id": "o",
            "request_id": "R", "http_status": 200, "object_size": 5
        })
    }

    fn with(patch: serde_json::Value) -> Vec<u8> {
        let mut v = base();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        serde_json::to_vec(&v).unwrap()
    }

    /// (key, size, delta, etag) of one event.
    type Obj = (String, u64, i64, String);

    /// (event type, objects) or the skip/invalid reason.
    fn run(patch: serde_json::Value, enc: KeyEncoding) -> Result<(EventType, Vec<Obj>), String> {
        let line = with(patch);
        let mut d = Decoder::default();
        let rec = d.decode(&line).map_err(|e| format!("invalid: {e}"))?;
        match events_of(&rec, enc) {
            Mapped::Events(op) => Ok((
                op.event_type,
                op.objects()
                    .map(|o| (o.key.into_owned(), o.size, o.delta_size, o.etag.to_owned()))
                    .collect(),
            )),
            Mapped::Skipped(s) => Err(format!("skipped: {s}")),
            Mapped::Invalid(e) => Err(format!("invalid: {e}")),
        }
    }

    fn event_of(op: &str) -> Result<EventType, String> {
        run(serde_json::json!({"operation": op}), KeyEncoding::Raw).map(|r| r.0)
    }

    #[test]
    fn every_row_of_the_operation_table() {
        use EventType::*;
        let table = [
            ("PutObject", PutObject),
            ("PostObject", PostObject),
            ("CopyObject", CopyObject),
            ("InitiateMultipartUpload", InitiateMultipartUpload),
            ("UploadPart", UploadPart),
            ("UploadPartCopy", UploadPartCopy),
            ("CompleteMultipartUpload", CompleteMultipartUpload),
            ("CompleteUploadPart", CompleteMultipartUpload),
            ("AppendObject", AppendObject),
            ("PutObjectSymlink", PutSymlink),
            ("PutSymlink", PutSymlink),
            ("GetObject", GetObject),
            ("DeleteObject", DeleteObject),
            ("DeleteObjects", DeleteObjects),
            ("DeleteMultipleObjects", DeleteObjects),
            ("AbortMultipartUpload", AbortMultipartUpload),
            ("AbortMultiPartUpload", AbortMultipartUpload),
            ("UpdateObjectMeta", UpdateObjectMeta),
            ("ChangeStorageClass", ChangeStorageClass),
            ("FinishRestore", FinishRestore),
        ];
        for (op, t) in table {
            assert_eq!(event_of(op), Ok(t), "{op}");
        }
        for op in [
            "HeadObject",
            "GetObjectMeta",
            "PutBucket",
            "ListObjects",
            "putobject",
        ] {
            assert!(
                event_of(op).unwrap_err().starts_with("skipped: operation"),
                "{op}"
            );
        }
    }

    #[test]
    fn only_2xx_statuses() {
        for s in [200, 204, 206, 299] {
            assert!(run(serde_json::json!({"http_status": s}), KeyEncoding::Raw).is_ok());
        }
        for s in [199, 300, 304, 403, 404, 500] {
            let e = run(serde_json::json!({"http_status": s}), KeyEncoding::Raw).unwrap_err();
            assert_eq!(e, format!("skipped: http_status {s} is not 2xx"));
        }
    }

    #[test]
    fn replication_events() {
        use EventType::*;
        let rep = |op: &str, overwrite: bool| {
            run(
                serde_json::json!({"operation": op, "replication": true, "overwrite": overwrite}),
                KeyEncoding::Raw,
            )
            .map(|r| r.0)
        };
        for op in ["DeleteObject", "DeleteObjects"] {
            assert_eq!(rep(op, false), Ok(ReplicationRemoved));
        }
        for op in [
            "PutObject",
            "PostObject",
            "CopyObject",
            "CompleteMultipartUpload",
            "CompleteUploadPart",
            "AppendObject",
            "PutSymlink",
            "PutObjectSymlink",
        ] {
            assert_eq!(rep(op, false), Ok(ReplicationCreated), "{op}");
            assert_eq!(rep(op, true), Ok(ReplicationModified), "{op}");
        }
        for op in [
            "GetObject",
            "UploadPart",
            "InitiateMultipartUpload",
            "UploadPartCopy",
            "AbortMultipartUpload",
            "UpdateObjectMeta",
            "ChangeStorageClass",
            "FinishRestore",
        ] {
            assert!(rep(op, false).unwrap_err().contains("replicated"), "{op}");
        }
        // Overwrite without replication changes nothing.
        assert_eq!(event_of("PutObject"), Ok(PutObject));
    }

    #[test]
    fn live_channel_segments_are_skipped_any_case() {
        for key in ["live/a.ts", "live/a.TS", "live/index.m3u8", "x.M3U8"] {
            let e = run(
                serde_json::json!({"object": key, "live_channel": true}),
                KeyEncoding::Raw,
            )
            .unwrap_err();
            assert!(e.contains("live-channel"), "{key}: {e}");
            // Without live_channel the same key notifies.
            assert!(run(serde_json::json!({"object": key}), KeyEncoding::Raw).is_ok());
        }
        assert!(run(
            serde_json::json!({"object": "live/a.mp4", "live_channel": true}),
            KeyEncoding::Raw
        )
        .is_ok());
        assert!(run(
            serde_json::json!({"object": "tts", "live_channel": true}),
            KeyEncoding::Raw
        )
        .is_ok());
    }

    #[test]
    fn batch_delete_fans_out_per_element() {
        let (t, objs) = run(
            serde_json::json!({"operation": "DeleteObjects", "object": null,
                "objects": [{"key": "a", "size": 3, "etag": "\"E\""}, {"key": "b"}]}),
            KeyEncoding::Raw,
        )
        .unwrap();
        assert_eq!(t, EventType::DeleteObjects);
        assert_eq!(
            objs,
            vec![
                ("a".into(), 3, -3, "E".into()),
                ("b".into(), 0, 0, "".into())
            ]
        );
        // OSS's batch-deletion log: one record per key, in `object`.
        let (_, objs) = run(
            serde_json::json!({"operation": "DeleteMultipleObjects", "object": "k", "object_size": 9}),
            KeyEncoding::Raw,
        )
        .unwrap();
        assert_eq!(objs, vec![("k".into(), 9, -9, "".into())]);
        let e = run(
            serde_json::json!({"operation": "DeleteObjects", "object": "-"}),
            KeyEncoding::Raw,
        )
        .unwrap_err();
        assert_eq!(e, "skipped: batch delete with no objects");
        let e = run(
            serde_json::json!({"operation": "DeleteObjects", "object": null, "objects": []}),
            KeyEncoding::Raw,
        )
        .unwrap_err();
        assert_eq!(e, "skipped: batch delete with no objects");
    }

    #[test]
    fn delta_defaults_by_direction() {
        let delta = |op: &str, extra: serde_json::Value| {
            let mut p = serde_json::json!({"operation": op});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            run(p, KeyEncoding::Raw).unwrap().1[0].2
        };
        assert_eq!(delta("PutObject", serde_json::json!({})), 5);
        assert_eq!(delta("DeleteObject", serde_json::json!({})), -5);
        assert_eq!(delta("GetObject", serde_json::json!({})), 0);
        assert_eq!(
            delta("GetObject", serde_json::json!({"delta_data_size": 7})),
            0
        );
        assert_eq!(delta("UpdateObjectMeta", serde_json::json!({})), 0);
        assert_eq!(
            delta("PutObject", serde_json::json!({"delta_data_size": -2})),
            -2
        );
        assert_eq!(
            delta("PutObject", serde_json::json!({"delta_data_size": "-"})),
            5
        );
    }

    #[test]
    fn required_fields_only_for_records_with_events() {
        for f in [
            "time",
            "bucket",
            "object",
            "bucket_location",
            "owner_id",
            "request_id",
        ] {
            let e = run(serde_json::json!({ f: null }), KeyEncoding::Raw).unwrap_err();
            assert_eq!(
                e,
                format!("invalid: field `{f}`: required field is missing")
            );
        }
        for f in ["operation", "http_status"] {
            let e = run(serde_json::json!({ f: null }), KeyEncoding::Raw).unwrap_err();
            assert!(e.starts_with("invalid"), "{f}");
        }
        // A bucket operation needs no object: skipped, not invalid.
        let e = run(
            serde_json::json!({"operation": "PutBucket", "object": null, "owner_id": null}),
            KeyEncoding::Raw,
        )
        .unwrap_err();
        assert!(e.starts_with("skipped"), "{e}");
        // __time__ stands in for time.
        assert!(run(
            serde_json::json!({"time": null, "__time__": 1467371850}),
            KeyEncoding::Raw
        )
        .is_ok());
    }

    #[test]
    fn url_encoded_keys() {
        let (_, objs) = run(
            serde_json::json!({"object": "photos%2F%E7%8C%AB%20cat.jpg"}),
            KeyEncoding::Url,
        )
        .unwrap();
        assert_eq!(objs[0].0, "photos/猫 cat.jpg");
        let (_, objs) = run(serde_json::json!({"object": "a%2Fb"}), KeyEncoding::Raw).unwrap();
        assert_eq!(objs[0].0, "a%2Fb");
        let e = run(serde_json::json!({"object": "bad%FF"}), KeyEncoding::Url).unwrap_err();
        assert!(e.contains("field `object`"), "{e}");
        let e = run(serde_json::json!({"operation": "DeleteObjects", "objects": [{"key": "ok"}, {"key": "%C3"}]}), KeyEncoding::Url).unwrap_err();
        assert!(e.contains("objects[1].key"), "{e}");
    }

    #[test]
    fn region_drops_the_oss_prefix() {
        let line = with(serde_json::json!({"bucket_location": "oss-cn-hangzhou"}));
        let mut d = Decoder::default();
        let rec = d.decode(&line).unwrap();
        let Mapped::Events(op) = events_of(&rec, KeyEncoding::Raw) else {
            panic!()
        };
        assert_eq!(op.region, "cn-hangzhou");
        let line = with(serde_json::json!({"bucket_location": "cn-beijing"}));
        let rec = d.decode(&line).unwrap();
        let Mapped::Events(op) = events_of(&rec, KeyEncoding::Raw) else {
            panic!()
        };
        assert_eq!(op.region, "cn-beijing");
    }
}
