pub mod autotune;
pub mod bench;
pub mod cdvalues;
pub mod compress;
pub mod demo;
pub mod info;
pub mod list;
pub mod synth;
