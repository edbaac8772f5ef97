//! The output (docs/message-format.md): OSS's notification JSON written
//! straight into a reused buffer in OSS's key order, its Base64, and its
//! CloudEvents form.

mod cloudevents;
mod json;
mod range;

pub use cloudevents::{event_id, write_cloudevent, CloudEvent};
pub use json::write_json_string;
pub use range::read_range;

use crate::event::{EventType, ObjectRef, Operation};

/// Writes one notification (`{"events":[{…}]}`) for `obj` of `op`, as rule
/// `rule_id` matched it, appending to `out`.
pub fn write_notification(
    out: &mut Vec<u8>,
    op: &Operation<'_>,
    obj: &ObjectRef<'_>,
    rule_id: &str,
) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"events\":[{\"eventName\":\"");
    out.extend_from_slice(op.event_type.name().as_bytes());
    out.extend_from_slice(b"\",\"eventSource\":\"acs:oss\",\"eventTime\":\"");
    crate::oplog::time::write_utc(op.time_ms, out);
    out.extend_from_slice(b"\",\"eventVersion\":\"1.0\",\"oss\":{\"bucket\":{\"arn\":\"");
    write_bucket_arn(out, op.region, op.owner_id, op.bucket);
    out.extend_from_slice(b"\",\"name\":");
    write_json_string(out, op.bucket);
    out.extend_from_slice(b",\"ownerIdentity\":");
    write_json_string(out, op.owner_id);
    out.extend_from_slice(b"},\"object\":{\"deltaSize\":");
    out.extend_from_slice(num.format(obj.delta_size).as_bytes());
    out.extend_from_slice(b",\"eTag\":");
    write_json_string(out, obj.etag);
    out.extend_from_slice(b",\"key\":");
    write_json_string(out, &obj.key);
    match op.event_type {
        EventType::AppendObject => {
            out.extend_from_slice(b",\"position\":");
            out.extend_from_slice(num.format(op.append_position).as_bytes());
        }
        EventType::GetObject => {
            let (from, to) = read_range(op.range, obj.size);
            out.extend_from_slice(b",\"readFrom\":");
            out.extend_from_slice(num.format(from).as_bytes());
            out.extend_from_slice(b",\"readTo\":");
            out.extend_from_slice(num.format(to).as_bytes());
        }
        _ => {}
    }
    out.extend_from_slice(b",\"size\":");
    out.extend_from_slice(num.format(obj.size).as_bytes());
    out.extend_from_slice(b"},\"ossSchemaVersion\":\"1.0\",\"ruleId\":");
    write_json_string(out, rule_id);
    out.extend_from_slice(b"},\"region\":");
    write_json_string(out, op.region);
    out.extend_from_slice(b",\"requestParameters\":{\"sourceIPAddress\":");
    write_json_string(out, op.client_ip);
    out.extend_from_slice(b"},\"responseElements\":{\"requestId\":");
    write_json_string(out, op.request_id);
    out.extend_from_slice(b"},\"userIdentity\":{\"principalId\":");
    write_json_string(out, op.requester_id);
    out.push(b'}');
    if let Some(vars) = op.x_vars {
        out.extend_from_slice(b",\"xVars\":{");
        for (i, (k, v)) in vars.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(out, k);
            out.push(b':');
            write_json_string(out, v);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}]}");
}

/// Appends `acs:oss:{region}:{owner}:{bucket}`, escaped for a JSON string:
/// the bucket's ARN, and the start of a CloudEvent's `subject`.
#[inline]
fn write_bucket_arn(out: &mut Vec<u8>, region: &str, owner: &str, bucket: &str) {
    out.extend_from_slice(b"acs:oss:");
    json::write_escaped(out, region);
    out.push(b':');
    json::write_escaped(out, owner);
    out.push(b':');
    json::write_escaped(out, bucket);
}

/// Appends the standard, padded Base64 of `data` to `out`.
pub fn write_base64(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    let len = base64_simd::STANDARD.encoded_length(data.len());
    out.resize(start + len, 0);
    // Writes exactly `len` bytes into the slice just sized for them.
    let _ = base64_simd::STANDARD.encode(data, base64_simd::Out::from_slice(&mut out[start..]));
}
