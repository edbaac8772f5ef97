//! A librdkafka message kept whole, payload included, from the fetch to the
//! worker that decodes it: the batch holds it instead of a copy. It lives in
//! a module of its own, needing nothing of the source, so that the batch
//! (which every thread handles) does not depend on the Kafka source's
//! machinery (`source::fetch_queue` makes them).

use std::ptr;

use rdkafka::bindings as rd;

/// A fetched librdkafka message, kept (payload included, not copied) until
/// dropped: the worker that decodes it drops it. Every `KeptMessage` must be dropped
/// before the consumer it came from: `run` joins the workers, which drain
/// every batch, before it lets go of the consumer.
pub struct KeptMessage(ptr::NonNull<rd::rd_kafka_message_t>);

// SAFETY: a message from `rd_kafka_consume_batch_queue` belongs to the
// application alone; librdkafka's threads never touch it again. Reading its
// fields and `rd_kafka_message_destroy` (which releases its buffer and
// partition through atomic reference counts) may run on any thread, and a
// `KeptMessage` is used by one thread at a time (it is not `Sync`: only moved).
unsafe impl Send for KeptMessage {}

impl KeptMessage {
    /// Takes ownership of `m`.
    ///
    /// # Safety
    ///
    /// `m` is a message librdkafka handed to the application (from
    /// `rd_kafka_consume_batch_queue`), owned by the caller and given up by
    /// it: nothing else destroys or changes it.
    pub unsafe fn new(m: ptr::NonNull<rd::rd_kafka_message_t>) -> KeptMessage {
        KeptMessage(m)
    }

    pub fn payload(&self) -> &[u8] {
        // SAFETY: the message is ours and alive until `drop`; librdkafka
        // does not change it meanwhile. The payload, when present, is `len`
        // bytes that live as long as the message.
        unsafe {
            let m = self.0.as_ref();
            if m.payload.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(m.payload as *const u8, m.len)
            }
        }
    }
}

impl Drop for KeptMessage {
    fn drop(&mut self) {
        // SAFETY: the message is ours, destroyed once, here.
        unsafe { rd::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}
