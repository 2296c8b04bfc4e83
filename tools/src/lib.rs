//! The library behind the `roibin` binary: HDF5 chunk I/O, the chunk grid, the parallel
//! transcode loop and the synthetic detector data. The binary only parses arguments.

pub mod cmd;
pub mod cxi;
pub mod grid;
pub use roibin_h5io as h5io;
pub mod maxlipo;
pub mod scan;
pub mod synth;
pub mod transcode;
pub mod ui;
pub mod world;
