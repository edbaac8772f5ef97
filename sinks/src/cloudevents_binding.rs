//! CloudEvents' protocol bindings for the sinks that offer a content mode
//! (docs/message-format.md): the worker always writes a structured event;
//! binary content mode splits it here into attributes, a content type and
//! `data`, which the HTTP binding sends as `ce-*` headers and the Kafka
//! binding as `ce_*` record headers.

use serde::Deserialize;

use crate::config::{Encoding, FieldIssue};

/// How a CloudEvent travels (a sink's `cloudevents_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudEventsMode {
    /// The whole event as the payload, typed [`STRUCTURED_CONTENT_TYPE`].
    #[default]
    Structured,
    /// The attributes as headers, `data` as the payload.
    Binary,
}

/// The media type of a structured event (JSON event format).
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// `cloudevents_mode = "binary"` needs CloudEvents to split.
pub fn check_mode(mode: CloudEventsMode, encoding: Encoding, issues: &mut Vec<FieldIssue>) {
    if mode == CloudEventsMode::Binary && encoding != Encoding::CloudEvents {
        issues.push(FieldIssue::new(
            "cloudevents_mode",
            "\"binary\" needs encoding = \"cloudevents\"",
        ));
    }
}

/// A structured CloudEvent in binary content mode: its attributes but
/// `data` and `datacontenttype` (name, value as text), `datacontenttype`,
/// and `data`, byte for byte.
#[derive(Debug, PartialEq, Eq)]
pub struct BinaryEvent<'a> {
    pub attributes: Vec<(String, String)>,
    pub content_type: String,
    pub data: &'a str,
}

/// What CloudEvents' HTTP binding percent-encodes in a header value: space,
/// `"`, `%` and everything outside printable ASCII (non-ASCII bytes are
/// always encoded).
const CE_HEADER: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'%');

impl<'a> BinaryEvent<'a> {
    /// Splits a structured event. Not one is a permanent failure of the
    /// message: a retry would split the same bytes.
    pub fn from_structured(event: &'a str) -> Result<Self, String> {
        use serde_json::value::RawValue;
        let attrs: std::collections::BTreeMap<String, &'a RawValue> =
            serde_json::from_str(event)
                .map_err(|e| format!("not a CloudEvent (binary content mode needs one): {e}"))?;
        let mut out = BinaryEvent {
            attributes: Vec::with_capacity(attrs.len()),
            content_type: "application/json".into(),
            data: "",
        };
        for (name, raw) in attrs {
            if name == "data" {
                out.data = raw.get();
                continue;
            }
            let value = match serde_json::from_str::<String>(raw.get()) {
                Ok(s) => s,
                // Numbers and booleans are written as they are.
                Err(_) => raw.get().to_owned(),
            };
            if name == "datacontenttype" {
                out.content_type = value;
            } else {
                out.attributes.push((name, value));
            }
        }
        Ok(out)
    }

    /// The HTTP binding's headers: `ce-NAME`, values percent-encoded.
    pub fn http_headers(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.attributes.iter().map(|(name, value)| {
            (
                format!("ce-{name}"),
                percent_encoding::utf8_percent_encode(value, CE_HEADER).to_string(),
            )
        })
    }

    /// The Kafka binding's headers: `ce_NAME` with the value's UTF-8 bytes
    /// (Kafka headers are binary, so nothing is escaped).
    pub fn kafka_headers(&self) -> impl Iterator<Item = (String, &str)> + '_ {
        self.attributes
            .iter()
            .map(|(name, value)| (format!("ce_{name}"), value.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const EVENT: &str = r#"{"specversion":"1.0","id":"i","subject":"acs:oss:r:1:b/照 片%\"x","datacontenttype":"application/json;charset=utf-8","data":{"k":[1, 2]}}"#;

    #[test]
    fn binary_mode_splits_attributes_content_type_and_data() {
        let b = BinaryEvent::from_structured(EVENT).unwrap();
        assert_eq!(b.data, r#"{"k":[1, 2]}"#);
        assert_eq!(b.content_type, "application/json;charset=utf-8");
        let names: Vec<&str> = b.attributes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "specversion", "subject"]);
        assert!(BinaryEvent::from_structured("eyJ9").is_err());
    }

    #[test]
    fn http_headers_are_percent_encoded_and_kafka_headers_are_not() {
        let b = BinaryEvent::from_structured(EVENT).unwrap();
        let http: BTreeMap<_, _> = b.http_headers().collect();
        assert_eq!(http["ce-specversion"], "1.0");
        assert_eq!(
            http["ce-subject"],
            "acs:oss:r:1:b/%E7%85%A7%20%E7%89%87%25%22x"
        );
        assert!(!http.contains_key("ce-data") && !http.contains_key("ce-datacontenttype"));
        let kafka: BTreeMap<_, _> = b.kafka_headers().collect();
        assert_eq!(kafka["ce_subject"], "acs:oss:r:1:b/照 片%\"x");
        assert_eq!(kafka.len(), 3);
    }
}
