//! Event types (docs/events.md): the 19 specific OSS event names, the wildcards that
//! select them, and the mapping from an operation-log record to the events it
//! produces.

mod mapping;
mod types;

pub use mapping::{events_of, Mapped, ObjectRef, Operation, Skip};
pub use types::{Category, EventMask, EventPattern, EventType, ALL_EVENT_TYPES};
