//! One librdkafka queue that every assigned partition's fetched messages are
//! forwarded to, read with `rd_kafka_consume_batch_queue`. rdkafka's `poll`
//! returns one message per call, and each call takes the queue lock, reads
//! the clock four times and allocates; here that is paid once per batch.
//! Rebalances, statistics and errors stay on the consumer's own queue, which
//! the source keeps polling.

use std::ffi::{CStr, CString};
use std::ptr;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;

use super::kafka::KafkaConsumer;
use crate::pipeline::kept_message::KeptMessage;

/// One fetched message, handed to the caller with its ownership.
pub struct Fetched {
    /// librdkafka's topic handle, stable for the client's life: a cache key.
    pub topic_handle: usize,
    pub partition: i32,
    pub offset: i64,
    pub message: KeptMessage,
}

/// The queue, owned by the source loop, which borrows the consumer: it
/// cannot outlive the `rd_kafka_t` it was made from. While it exists the
/// consumer's context holds it, so that partitions assigned later are
/// forwarded to it too.
pub struct FetchQueue<'c> {
    consumer: &'c KafkaConsumer,
    queue: *mut rd::rd_kafka_queue_t,
    messages: Vec<*mut rd::rd_kafka_message_t>,
}

impl<'c> FetchQueue<'c> {
    pub fn new(consumer: &'c KafkaConsumer, capacity: usize) -> FetchQueue<'c> {
        let rk = consumer.client().native_ptr();
        // SAFETY: `rk` is the live client of `consumer`, which outlives this
        // queue (the borrow above); the handle is destroyed in `drop`.
        let queue = unsafe { rd::rd_kafka_queue_new(rk) };
        consumer.context().set_fetch_queue(queue);
        if let Ok(assigned) = consumer.assignment() {
            // SAFETY: the client and the queue are both live here.
            unsafe { forward(rk, queue, &assigned) };
        }
        FetchQueue {
            consumer,
            queue,
            messages: vec![ptr::null_mut(); capacity.max(1)],
        }
    }

    /// Hands up to `max` messages to `each`, in queue order. If none is
    /// ready it waits up to `wait` for the first, and returns as soon as it
    /// comes (librdkafka's call alone would wait until `max` are there).
    /// Errors librdkafka puts in the queue are logged and skipped, as the
    /// consumer's `poll` does. Returns how many messages it took from the
    /// queue, errors included.
    pub fn read(&mut self, max: usize, wait: Duration, mut each: impl FnMut(Fetched)) -> usize {
        let max = max.min(self.messages.len());
        if max == 0 {
            return 0;
        }
        let mut n = self.read_batch(0, max, &mut each);
        if n == 0 && !wait.is_zero() {
            let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            n = self.read_batch(ms, 1, &mut each);
            if n > 0 {
                n += self.read_batch(0, max - n, &mut each);
            }
        }
        n
    }

    fn read_batch(&mut self, timeout_ms: i32, max: usize, each: &mut impl FnMut(Fetched)) -> usize {
        if max == 0 {
            return 0;
        }
        // SAFETY: `queue` is live (destroyed only in `drop`); `messages` has
        // room for `max` pointers (`max` ≤ its length, checked in `read`).
        let got = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue,
                timeout_ms,
                self.messages.as_mut_ptr(),
                max,
            )
        };
        let got = usize::try_from(got).unwrap_or(0);
        for &m in &self.messages[..got] {
            let Some(m) = ptr::NonNull::new(m) else {
                continue;
            };
            // SAFETY: librdkafka filled the first `got` slots with messages
            // we now own: each becomes a `KeptMessage`, which destroys it
            // once.
            let held = unsafe { KeptMessage::new(m) };
            // SAFETY: the message is alive while `held` is.
            let msg = unsafe { m.as_ref() };
            if msg.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                each(Fetched {
                    topic_handle: msg.rkt as usize,
                    partition: msg.partition,
                    offset: msg.offset,
                    message: held,
                });
            } else {
                // SAFETY: librdkafka's error strings are static and
                // NUL-terminated.
                let reason = unsafe { CStr::from_ptr(rd::rd_kafka_err2str(msg.err)) };
                let text = format!("partition {}: {}", msg.partition, reason.to_string_lossy());
                self.consumer
                    .context()
                    .warn_limited("Kafka consumer error", &text);
            }
        }
        got
    }

    /// The name of a topic handle from [`Fetched::topic_handle`].
    pub fn topic_name(handle: usize) -> String {
        // SAFETY: the handle came from a message of this client; librdkafka
        // keeps topic handles (and their names) for the client's life.
        unsafe {
            CStr::from_ptr(rd::rd_kafka_topic_name(
                handle as *const rd::rd_kafka_topic_t,
            ))
            .to_string_lossy()
            .into_owned()
        }
    }
}

impl Drop for FetchQueue<'_> {
    /// Points the assigned partitions back at the consumer's queue, so that
    /// whatever the client does after the source loop (closing, committing
    /// on revocation) sees them as librdkafka set them up.
    fn drop(&mut self) {
        // First, so that no rebalance forwards to the queue from here on
        // (callbacks run on this thread).
        self.consumer.context().set_fetch_queue(ptr::null_mut());
        let rk = self.consumer.client().native_ptr();
        // SAFETY: `rk` is live (the consumer outlives `self`); the consumer
        // queue handle is ours to destroy.
        unsafe {
            let home = rd::rd_kafka_queue_get_consumer(rk);
            if let Ok(assigned) = self.consumer.assignment() {
                forward(rk, home, &assigned);
            }
            if !home.is_null() {
                rd::rd_kafka_queue_destroy(home);
            }
            rd::rd_kafka_queue_destroy(self.queue);
        }
    }
}

/// Forwards the fetched messages of each of `partitions` to `to`.
///
/// # Safety
/// `rk` must be a live client and `to` a live queue of it (or null, which
/// stops forwarding).
pub unsafe fn forward(
    rk: *mut rd::rd_kafka_t,
    to: *mut rd::rd_kafka_queue_t,
    partitions: &TopicPartitionList,
) {
    for e in partitions.elements() {
        let Ok(name) = CString::new(e.topic()) else {
            continue;
        };
        // SAFETY: per this function's contract; the partition queue handle
        // is ours to destroy, and forwarding outlives it (librdkafka keeps
        // its own references to both queues).
        unsafe {
            let part = rd::rd_kafka_queue_get_partition(rk, name.as_ptr(), e.partition());
            if part.is_null() {
                continue;
            }
            rd::rd_kafka_queue_forward(part, to);
            rd::rd_kafka_queue_destroy(part);
        }
    }
}
