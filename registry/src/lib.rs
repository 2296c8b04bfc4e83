//! The core of roibin: the [`Codec`] abstraction, typed options, the registry codecs join through
//! `inventory`, the one-line graph [`spec`] language, [`Pipeline`]s, and the chunk [`container`].
//!
//! No codec lives here; `roibin-compressors` registers them.

pub mod codec;
pub mod container;
pub mod dtype;
pub mod error;
pub mod metrics;
pub mod options;
pub mod pipeline;
pub mod profile;
pub mod purity;
pub mod spec;
pub mod stream;
pub mod threads;
pub mod tuning;

pub use codec::{check_graph, codecs, lookup, Accepts, Codec, CodecInfo, Purpose};
pub use dtype::{ArrayMeta, DType, DataKind};
pub use error::{Error, Result};
pub use options::{Config, OptionSpec, OptionType};
pub use pipeline::Pipeline;
pub use spec::Graph;

/// Re-exported so codec crates register without naming `inventory` themselves.
pub use inventory;
