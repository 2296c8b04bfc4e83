//! The algorithms: one module each, registered through `inventory` like codecs, so a new one
//! is one file and no central list.
//!
//! An algorithm turns a request into a [`Reducer`]. Most signals are linear in the processed
//! frame (sums, moments, sector and ring sums): the reducer gives a [`Detector`] and turns its
//! accumulators into values ([`Reducer::finish`]); the engine computes the accumulators in
//! one pass over the raw frame, or from a roibin chunk's bins and exact pixels without
//! decoding it. Other signals (`Imax`) read the processed frame; `hits` and `bragg` read a
//! roibin chunk's frame facts.

mod brightfield;
mod gridroi;
mod peaks;
mod polarroi;
mod radial;

use crate::geometry::{Detector, Geometry};
use crate::request::Request;
use crate::{Error, Result};
use roibin_compressors::detector::roibin::parts::Parts;

/// What one scan point's values are computed from.
pub enum Input<'a> {
    /// A linear detector's accumulators.
    Sums(&'a [f64]),
    /// The processed frame.
    Processed(&'a [f64]),
    /// The scan frame made of rows `rows` of frame `f` of a roibin chunk (all its rows, or one
    /// panel's when each panel is a scan frame).
    Parts(&'a Parts, usize, std::ops::Range<usize>),
}

/// An algorithm bound to a request and a frame geometry.
pub trait Reducer: Send + Sync {
    /// Shape of one scan point's values: `[]` for a number, `[nq]`, `[ny, nx]`.
    fn value_shape(&self) -> Vec<usize>;
    /// Name and coordinates of the value axes (radial: `q` ring centres in pixels).
    fn value_axes(&self) -> Vec<(String, Vec<f64>)> {
        vec![]
    }
    /// The linear detector, when the signal is linear in the processed frame.
    fn detector(&self) -> Option<&Detector> {
        None
    }
    /// Whether the signal needs a roibin chunk's frame facts.
    fn needs_parts(&self) -> bool {
        false
    }
    /// One scan point's values from what [`Reducer::detector`] and
    /// [`Reducer::needs_parts`] ask for (the processed frame otherwise).
    fn finish(&self, input: Input<'_>, out: &mut [f64]) -> Result<()>;
}

/// A registered algorithm.
pub struct AlgorithmInfo {
    pub name: &'static str,
    /// Its signals; the first is the default.
    pub signals: &'static [&'static str],
    pub doc: &'static str,
    pub build: fn(&Request, &str, &Geometry) -> Result<Box<dyn Reducer>>,
}

inventory::collect!(AlgorithmInfo);

/// Every registered algorithm, sorted by name.
pub fn algorithms() -> Vec<&'static AlgorithmInfo> {
    let mut v: Vec<_> = inventory::iter::<AlgorithmInfo>.into_iter().collect();
    v.sort_by_key(|a| a.name);
    v
}

/// The reducer for a request (its algorithm and signal checked).
pub fn reducer(req: &Request, geometry: &Geometry) -> Result<Box<dyn Reducer>> {
    let all = algorithms();
    let info = all.iter().find(|a| a.name == req.algo).ok_or_else(|| {
        Error::request(
            "algo",
            format!(
                "unknown algorithm `{}` (known: {})",
                req.algo,
                all.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let signal = req.signal.as_deref().unwrap_or(info.signals[0]);
    if !info.signals.contains(&signal) {
        return Err(Error::request(
            "signal",
            format!(
                "`{signal}` is not a signal of {} (its signals: {})",
                info.name,
                info.signals.join(", ")
            ),
        ));
    }
    (info.build)(req, signal, geometry)
}

/// The signal a request computes (its algorithm's default when none was given).
pub fn signal_of(req: &Request) -> String {
    req.signal.clone().unwrap_or_else(|| {
        algorithms()
            .iter()
            .find(|a| a.name == req.algo)
            .map_or("value".into(), |a| a.signals[0].to_string())
    })
}

/// `S`, `Σx`, `Σy` → (Itot, comh, comv); com is NaN where the sum is 0.
pub(crate) fn moments(a: &[f64]) -> [f64; 3] {
    let com = |k: usize| match a.get(k) {
        Some(m) if a[0] != 0.0 => m / a[0],
        _ => f64::NAN,
    };
    [a[0], com(1), com(2)]
}

/// A processed-space label per pixel from a predicate giving each pixel's label.
pub(crate) fn labels(g: &Geometry, f: impl Fn(f64, f64) -> Option<u32>) -> Vec<u32> {
    // Row by row: no division per pixel (two of them were most of a 4 M-pixel frame's cost).
    let mut out = Vec::with_capacity(g.out_h * g.out_w);
    for y in 0..g.out_h {
        out.extend((0..g.out_w).map(|x| f(x as f64, y as f64).unwrap_or(crate::geometry::NONE)));
    }
    out
}

fn expect_sums<'a>(input: Input<'a>) -> Result<&'a [f64]> {
    match input {
        Input::Sums(s) => Ok(s),
        _ => Err(Error::Source(
            "internal: a linear signal was given no sums".into(),
        )),
    }
}
