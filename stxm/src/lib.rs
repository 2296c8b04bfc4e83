//! roibin's STXM engine: reduce every frame of a raster scan to a number or a curve, straight
//! from the files detectors write, and return the result as a map of the sample.
//!
//! - [`request`]: dada's request grammar (`algo`, `signal`, `roi`, `binning`, `polarroi`, …),
//!   shared by `roibin stxm`, the HTTP API and Python.
//! - [`source`]: frames from HDF5 datasets (raw chunks of roibin (443) and bitshuffle-LZ4
//!   (32008) decoded here, in parallel, outside the HDF5 lock; any other filter through
//!   HDF5's own read), DECTRIS master files and Merlin `.mib` files.
//! - [`geometry`]: dada's pre-processing (ROI, binning, mask, empty-beam division,
//!   difference) folded into per-pixel weights, so every linear signal is one pass over the
//!   raw frame.
//! - [`algo`]: the algorithms, one module each, registered through `inventory`.
//! - [`compressed`]: linear signals of roibin chunks from their bins and exact pixels,
//!   without decoding the background.
//! - [`engine`]: lines as tasks, frames in parallel, corrupt frames as NaN.
//! - [`output`]: NXdata HDF5, PNG, 32-bit float TIFF, JSON, ASCII. [`cache`]: results on disk.

pub mod algo;
pub mod bitplanes;
pub mod bslz4;
pub mod cache;
pub mod compressed;
pub mod engine;
pub mod geometry;
pub mod output;
pub mod request;
mod run_sums;
pub mod show;
pub mod source;

pub use engine::{run, Reduction, RunOptions};
pub use request::Request;

/// What can go wrong; every message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request parameter is wrong: the message names it.
    #[error("{param}: {message}")]
    Request { param: String, message: String },
    /// The source cannot be read as a scan.
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub(crate) fn request(param: &str, message: impl Into<String>) -> Error {
        Error::Request {
            param: param.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
