//! CloudEvents 1.0 (structured JSON) in the shape Alibaba Cloud EventBridge
//! gives OSS events (docs/message-format.md, "CloudEvents"): the
//! notification's one event as `data`, OSS's identity in the `aliyun*`
//! extension attributes, and an `id` derived from the record itself, so a
//! redelivery after a crash carries the same `id` and consumers can drop
//! the duplicates that at-least-once delivery allows.

use sha1::{Digest, Sha1};

use super::json::{write_escaped, write_json_string};

/// What a CloudEvent is made of besides the notification.
pub struct CloudEvent<'a> {
    /// The notification as [`super::write_notification`] wrote it:
    /// `{"events":[EVENT]}`.
    pub notification: &'a [u8],
    pub event_name: &'a str,
    pub region: &'a str,
    pub owner_id: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub time_ms: i64,
    /// From [`event_id`].
    pub id: &'a str,
}

/// The namespace of ossnotify's name-based (version 5) UUIDs.
const NAMESPACE: [u8; 16] = [
    0x6f, 0x73, 0x73, 0x6e, 0x6f, 0x74, 0x69, 0x66, 0x79, 0x2d, 0x63, 0x65, 0x2d, 0x69, 0x64, 0x31,
];

/// The `id` of the `index`-th event of the record `line` for rule
/// `rule_id`: a version 5 UUID (RFC 9562) of the name `line` (trailing
/// whitespace cut), a 0 byte, `index` as 4 big-endian bytes and `rule_id`, so the same record
/// read again (after a crash, a rebalance, a replay of the topic) gives the
/// same `id`, and two different records (their request ids differ) do not.
pub fn event_id(line: &[u8], index: u32, rule_id: &str) -> String {
    let mut h = Sha1::new();
    h.update(NAMESPACE);
    h.update(line.trim_ascii_end());
    h.update([0]);
    h.update(index.to_be_bytes());
    h.update(rule_id.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 0xf) as usize] as char);
    }
    s
}

const PREFIX: &[u8] = b"{\"events\":[";
const SUFFIX: &[u8] = b"]}";

/// Appends the CloudEvent of `ev` to `out`: compact, attributes in the
/// order of the reference table, `data` last.
pub fn write_cloudevent(out: &mut Vec<u8>, ev: &CloudEvent<'_>, event_bus: &str, publish_ms: i64) {
    debug_assert!(ev.notification.starts_with(PREFIX) && ev.notification.ends_with(SUFFIX));
    let data = &ev.notification[PREFIX.len()..ev.notification.len() - SUFFIX.len()];
    out.extend_from_slice(b"{\"specversion\":\"1.0\",\"id\":\"");
    out.extend_from_slice(ev.id.as_bytes());
    out.extend_from_slice(b"\",\"source\":\"acs.oss\",\"type\":\"oss:");
    out.extend_from_slice(ev.event_name.as_bytes());
    out.extend_from_slice(b"\",\"subject\":\"");
    super::write_bucket_arn(out, ev.region, ev.owner_id, ev.bucket);
    out.push(b'/');
    write_escaped(out, ev.key);
    out.extend_from_slice(b"\",\"time\":\"");
    crate::oplog::time::write_utc(ev.time_ms, out);
    out.extend_from_slice(
        b"\",\"datacontenttype\":\"application/json;charset=utf-8\",\"aliyunaccountid\":",
    );
    write_json_string(out, ev.owner_id);
    out.extend_from_slice(b",\"aliyunoriginalaccountid\":");
    write_json_string(out, ev.owner_id);
    out.extend_from_slice(b",\"aliyunregionid\":");
    write_json_string(out, ev.region);
    out.extend_from_slice(b",\"aliyunpublishtime\":\"");
    crate::oplog::time::write_utc(publish_ms, out);
    out.extend_from_slice(b"\",\"aliyuneventbusname\":");
    write_json_string(out, event_bus);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_5_uuids_stable_per_record_event_and_rule() {
        let a = event_id(b"{\"x\":1}\n", 0, "r");
        assert_eq!(a, event_id(b"{\"x\":1}\r\n", 0, "r"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, event_id(b"{\"x\":2}", 0, "r"));
        assert_ne!(a, event_id(b"{\"x\":1}", 1, "r"));
        assert_ne!(a, event_id(b"{\"x\":1}", 0, "s"));
        // The algorithm is part of the contract (ids must survive an
        // upgrade): this value may never change. Python's
        // `uuid.uuid5(UUID(bytes=NAMESPACE), name)` gives it too.
        assert_eq!(a, "08fe8c6b-afe0-5f80-9546-362162f5701c");
    }

    #[test]
    fn data_is_the_single_event_and_strings_are_escaped() {
        let n = br#"{"events":[{"eventName":"ObjectCreated:PutObject","k":"v"}]}"#;
        let ev = CloudEvent {
            notification: n,
            event_name: "ObjectCreated:PutObject",
            region: "cn-hangzhou",
            owner_id: "1",
            bucket: "b",
            key: "a\"b",
            time_ms: 0,
            id: "x",
        };
        let mut out = Vec::new();
        write_cloudevent(&mut out, &ev, "bus", 1_000);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["subject"], "acs:oss:cn-hangzhou:1:b/a\"b");
        assert_eq!(v["data"]["k"], "v");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["aliyunpublishtime"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["aliyuneventbusname"], "bus");
    }
}
