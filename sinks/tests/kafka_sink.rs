//! The Kafka sink against the real test broker (tansu): every message
//! arrives once, with its bucket/key as the Kafka key.

#[path = "../../tests/support/broker.rs"]
mod broker;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
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

    // Read it all back by assignment (no group join needed).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "check")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("sink-out", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < batch.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let payload = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            assert!(got.insert(payload, key).is_none(), "duplicate");
        }
    }
    let want: BTreeMap<String, String> = batch
        .iter()
        .map(|e| (e.payload.clone(), e.key.clone()))
        .collect();
    assert_eq!(got, want);
}
