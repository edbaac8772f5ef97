//! `encoding = "cloudevents"` end to end: a real `ossnotify run` sends the
//! demo's records to an MNS queue (mns-dev) and to webhooks in structured
//! and binary content mode; every attribute of what arrived is checked.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{HttpRecorder, Recorded};

const RECORD: &str = r#"{"time": "2024-05-01T10:00:00.123+08:00", "operation": "PutObject", "bucket": "photos-shenzhen", "object": "uploads/%E7%8C%AB%20cat.jpg", "bucket_location": "oss-cn-shenzhen", "owner_id": "1148912345646818", "requester_id": "2048", "client_ip": "203.0.113.7", "request_id": "6630A1B2C3D4E5F6A7B8C9D0", "http_status": 200, "object_size": 48213, "etag": "\"5EB63BBBE01EEED093CB22BB8F5ACDC3\""}"#;

fn config(d: &support::Dir, mns: &str, structured: &str, binary: &str) -> std::path::PathBuf {
    d.write(
        "ce.toml",
        &format!(
            r#"
[source]
type = "stdin"
key_encoding = "url"

[dead_letter]
path = "{dl}"

[sinks.queue]
type = "mns_queue"
endpoint = "{mns}"
queue = "oss-events"
access_key_id = "AK"
access_key_secret = "SK"
encoding = "cloudevents"
event_bus = "photos-bus"

[sinks.structured]
type = "http"
url = "{structured}"
encoding = "cloudevents"

[sinks.binary]
type = "http"
url = "{binary}"
encoding = "cloudevents"
cloudevents_mode = "binary"

[[rules]]
id = "uploads"
bucket = "photos-shenzhen"
events = ["ObjectCreated:*"]
sinks = ["queue", "structured", "binary"]
"#,
            dl = d.path("dead-letter").display(),
        ),
    )
}

fn one(requests: &[Recorded]) -> &Recorded {
    assert_eq!(requests.len(), 1, "{requests:?}");
    &requests[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribute_arrives_in_both_content_modes() {
    let d = support::Dir::new();
    let mns = support::mns_dev(support::dev_config()).await;
    let (structured, binary) = (HttpRecorder::start(), HttpRecorder::start());
    let cfg = config(&d, &mns.endpoint(), &structured.url, &binary.url);
    let before = Instant::now();
    let out = support::run(
        &["run", "-c", cfg.to_str().unwrap()],
        format!("{RECORD}\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let ran = before.elapsed();

    // What `match` predicts is the event every sink carries as `data`.
    let predicted = support::run(&["match", "-c", cfg.to_str().unwrap()], RECORD.as_bytes());
    let predicted: serde_json::Value =
        serde_json::from_slice(predicted.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let event = &predicted["message"]["events"][0];
    let id = ossnotify::encode::event_id(RECORD.as_bytes(), 0, "uploads");

    let accepted = mns.accepted();
    assert_eq!(accepted.len(), 1);
    let queued: serde_json::Value = serde_json::from_str(&accepted[0].body).unwrap();
    let s = one(&structured.requests()).clone();
    assert_eq!(
        s.headers["content-type"],
        "application/cloudevents+json; charset=utf-8"
    );
    let posted: serde_json::Value = serde_json::from_str(&s.body).unwrap();

    let subject = "acs:oss:cn-shenzhen:1148912345646818:photos-shenzhen/uploads/猫 cat.jpg";
    for (ce, bus) in [(&queued, "photos-bus"), (&posted, "ossnotify")] {
        let attrs = ce.as_object().unwrap();
        let names: Vec<&str> = attrs.keys().map(String::as_str).collect();
        assert_eq!(names.len(), 13, "{names:?}");
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], id.as_str());
        assert_eq!(ce["source"], "acs.oss");
        assert_eq!(ce["type"], "oss:ObjectCreated:PutObject");
        assert_eq!(ce["subject"], subject);
        assert_eq!(ce["time"], "2024-05-01T02:00:00.123Z");
        assert_eq!(ce["datacontenttype"], "application/json;charset=utf-8");
        assert_eq!(ce["aliyunaccountid"], "1148912345646818");
        assert_eq!(ce["aliyunoriginalaccountid"], "1148912345646818");
        assert_eq!(ce["aliyunregionid"], "cn-shenzhen");
        assert_eq!(ce["aliyuneventbusname"], bus);
        assert_eq!(&ce["data"], event);
        assert_eq!(ce["data"]["eventSource"], "acs:oss");
        // Produced during the run, with milliseconds, in UTC.
        let published = ce["aliyunpublishtime"].as_str().unwrap();
        assert_eq!(published.len(), 24, "{published}");
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let published_ms = ossnotify::oplog::time::parse(published).unwrap();
        assert!(
            published_ms <= at.as_millis() as i64
                && published_ms >= (at - ran - Duration::from_secs(1)).as_millis() as i64,
            "{published}"
        );
    }

    // Binary content mode: the same attributes as ce-* headers, data as
    // the body byte for byte.
    let b = one(&binary.requests()).clone();
    assert_eq!(b.headers["content-type"], "application/json;charset=utf-8");
    let body: serde_json::Value = serde_json::from_str(&b.body).unwrap();
    assert_eq!(&body, event);
    let ce: BTreeMap<&str, &str> = b
        .headers
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("ce-").map(|k| (k, v.as_str())))
        .collect();
    assert_eq!(ce.len(), 11, "{ce:?}");
    assert_eq!(ce["id"], id);
    assert_eq!(ce["type"], "oss:ObjectCreated:PutObject");
    assert_eq!(
        ce["subject"],
        "acs:oss:cn-shenzhen:1148912345646818:photos-shenzhen/uploads/%E7%8C%AB%20cat.jpg"
    );
    for (k, v) in &ce {
        if *k != "subject" && *k != "aliyunpublishtime" {
            assert_eq!(posted[*k], *v, "ce-{k}");
        }
    }
    mns.stop();
}
