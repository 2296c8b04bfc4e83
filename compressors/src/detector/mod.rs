//! Detector stages: peak finders (`pf8`, `pfv3`, `given`), `bin`, and the `roibin`/`roi`
//! meta codecs that keep Bragg-peak windows exact and compress the background.

pub mod bin;
mod boxsum;
pub mod dispersion;
pub mod elems;
pub mod npy;
pub mod peaks;
pub mod pf8;
pub mod pfv3;
pub mod radial_pack;
pub mod radial_sample;
pub mod recheck;
pub mod roibin;
