//! The config file (docs/config.md): the serde model, loading (includes, `rules_dir`,
//! `${ENV}`), and validation whose messages name file, line, column and field.

mod diagnostic;
mod env;
mod load;
mod model;
mod validate;

pub use diagnostic::{Diagnostic, Location, Severity};
pub use load::{load, load_read_only, load_str, load_structure, Loaded};
pub use model::{
    Config, DeadLetterConfig, MetricsConfig, PipelineConfig, PolicyConfig, RoutingSpec, SinkEntry,
    SourceConfig, SourceType, StoreKind, Stores,
};
