//! The Kafka sink against the real test broker (tansu): every message
//! arrives once, with its bucket/key as the Kafka key; CloudEvents arrive
//! in the Kafka binding's structured and binary content modes.

#[path = "../../tests/support/broker.rs"]
mod broker;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use ossnotify_sinks::kafka::KafkaConfig;
use ossnotify_sinks::{Envelope, Outcome, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produces_every_message_keyed_by_bucket_and_key() {
    let brokers = broker::brokers();
    broker::create_topic("sink-out", 3);
    let cfg: KafkaConfig =
        toml::from_str(&format!("brokers = \"{brokers}\"\ntopic = \"sink-out\"\n")).unwrap();
    let sink = cfg.build("to-kafka").unwrap();
    let batch: Vec<Envelope> = (0..600)
        .map(|i| Envelope {
            payload: format!("payload-{i}"),
            rule_id: "r".into(),
            key: format!("bucket/obj-{}", i % 50),
            ..Default::default()
        })
        .collect();
    for chunk in batch.chunks(sink.max_batch().min(200)) {
        let out = sink.deliver(chunk).await;
        assert!(out.iter().all(|o| *o == Outcome::Delivered), "{out:?}");
    }

    let mut got: BTreeMap<String, String> = BTreeMap::new();
    for r in read_back("sink-out", 3, batch.len()) {
        assert!(got.insert(r.value, r.key).is_none(), "duplicate");
    }
    let want: BTreeMap<String, String> = batch
        .iter()
        .map(|e| (e.payload.clone(), e.key.clone()))
        .collect();
    assert_eq!(got, want);
}

/// One record read back.
struct Read {
    key: String,
    value: String,
    headers: BTreeMap<String, String>,
}

/// Up to `n` records of `topic`, read by assignment (no group join needed).
fn read_back(topic: &str, partitions: i32, n: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker::brokers())
        .set("group.id", "check")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let text = |b: Option<&[u8]>| String::from_utf8(b.unwrap().to_vec()).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m.headers().map_or_else(BTreeMap::new, |h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), text(h.value)))
                    .collect()
            });
            got.push(Read {
                key: text(m.key()),
                value: text(m.payload()),
                headers,
            });
        }
    }
    got
}

/// A CloudEvent as the worker writes it (structured, compact).
const EVENT: &str = r#"{"specversion":"1.0","id":"7d1ab1c2-51c4-5b4e-9d0f-3a2b1c0d9e8f","source":"acs.oss","type":"oss:ObjectCreated:PutObject","subject":"acs:oss:cn-hangzhou:1148912345646818:photos/照片 1.jpg","time":"2026-11-27T10:00:00.000Z","datacontenttype":"application/json;charset=utf-8","aliyunaccountid":"1148912345646818","data":{"eventName":"ObjectCreated:PutObject","oss":{"object":{"key":"照片 1.jpg"}}}}"#;

/// Delivers `EVENT` through a CloudEvents Kafka sink in `mode` and reads
/// it back.
async fn cloudevent_through(topic: &str, mode: &str) -> Read {
    broker::create_topic(topic, 1);
    let cfg: KafkaConfig = toml::from_str(&format!(
        "brokers = \"{}\"\ntopic = \"{topic}\"\nencoding = \"cloudevents\"\ncloudevents_mode = \"{mode}\"\n",
        broker::brokers()
    ))
    .unwrap();
    assert!(cfg.validate().is_empty());
    let sink = cfg.build("ce").unwrap();
    let e = Envelope {
        payload: EVENT.into(),
        rule_id: "r".into(),
        key: "photos/照片 1.jpg".into(),
        ..Default::default()
    };
    let out = sink.deliver(std::slice::from_ref(&e)).await;
    assert_eq!(out, vec![Outcome::Delivered]);
    let mut got = read_back(topic, 1, 1);
    assert_eq!(got.len(), 1, "the event never arrived");
    let r = got.remove(0);
    assert_eq!(r.key, e.key);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_in_structured_mode_are_typed_by_a_content_type_header() {
    let r = cloudevent_through("ce-structured", "structured").await;
    assert_eq!(r.value, EVENT);
    let want = BTreeMap::from([(
        "content-type".to_owned(),
        "application/cloudevents+json; charset=utf-8".to_owned(),
    )]);
    assert_eq!(r.headers, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_in_binary_mode_carry_attributes_as_ce_headers_and_data_as_value() {
    let r = cloudevent_through("ce-binary", "binary").await;
    let event: serde_json::Map<String, serde_json::Value> = serde_json::from_str(EVENT).unwrap();
    // The value is `data`, byte for byte as the event held it.
    let data_at = EVENT.find(r#""data":"#).unwrap() + 7;
    assert_eq!(r.value, EVENT[data_at..EVENT.len() - 1]);
    // Every other attribute is a ce_ header with its value unescaped;
    // datacontenttype is content-type.
    let mut want: BTreeMap<String, String> = event
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "data" | "datacontenttype"))
        .map(|(k, v)| (format!("ce_{k}"), v.as_str().unwrap().to_owned()))
        .collect();
    want.insert(
        "content-type".into(),
        "application/json;charset=utf-8".into(),
    );
    assert_eq!(r.headers, want);
    assert_eq!(
        r.headers["ce_subject"],
        "acs:oss:cn-hangzhou:1148912345646818:photos/照片 1.jpg"
    );
    assert_eq!(r.headers.len(), 8, "7 attributes and content-type");
}

#[test]
fn binary_mode_needs_cloudevents() {
    let cfg: KafkaConfig =
        toml::from_str("brokers = \"b:9092\"\ntopic = \"t\"\ncloudevents_mode = \"binary\"\n")
            .unwrap();
    let issues = cfg.validate();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].field, "cloudevents_mode");
    assert!(
        issues[0].message.contains("needs encoding"),
        "{}",
        issues[0].message
    );
}

/// A topic the cluster does not have (and will not create) is the
/// config's error: dead-lettered (`Failed`) within seconds, not taken for
/// an outage and kept for a redelivery that cannot succeed. tansu creates
/// topics on first use, so this runs on librdkafka's mock cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_a_permanent_failure() {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let cfg: KafkaConfig = toml::from_str(&format!(
        "brokers = \"{}\"\ntopic = \"no-such-topic\"\n[librdkafka]\n\"allow.auto.create.topics\" = \"false\"\n",
        cluster.bootstrap_servers()
    ))
    .unwrap();
    let sink = cfg.build("missing").unwrap();
    let e = Envelope {
        payload: "p".into(),
        rule_id: "r".into(),
        key: "b/k".into(),
        ..Default::default()
    };
    let out = sink.deliver(std::slice::from_ref(&e)).await;
    match &out[0] {
        Outcome::Failed { error, .. } => assert!(error.contains("Unknown topic"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(sink.isolation().unwrap().breaker.is_closed());
}
