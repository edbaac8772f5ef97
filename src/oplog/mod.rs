//! The input: one operation-log record (docs/input.md) and its simd-json decoder.
//!
//! Records borrow every string from the (in-place unescaped) input buffer, so
//! decoding allocates nothing per field.

mod decode;
mod record;
pub mod time;

pub use decode::{DecodeError, Decoder, Lines, MAX_RECORD_BYTES};
pub use record::{BatchObject, OpRecord, MAX_BATCH_OBJECTS};

/// How object keys are written in the input (`[source] key_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEncoding {
    /// Keys are plain UTF-8.
    #[default]
    Raw,
    /// Keys are percent-encoded, as SLS ships them.
    Url,
}
