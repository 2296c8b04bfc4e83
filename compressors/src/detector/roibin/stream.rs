//! The `roibin`/`roi` stream inside a chunk.
//!
//! ```text
//! v3: u8 3 · u8 flags (1 = background) · u32 frames, panels, rows, cols ·
//!     per frame (u32 found, u32 windows, u8 flags (1 = non-hit)) · per window (u32 y, u32 x, u8 r) ·
//!     exact pixels (see `exact.rs`) · u64 len · windows encoded by roi_codec ·
//!     u64 len · background encoded
//!     The windows section holds the pixels the frame's windows cover inside their panels,
//!     each once, frame after frame in raster order (see `coverage.rs`).
//! v2: the same, with every window's (2r+1)² pixels in window order (overlaps repeated,
//!     pixels outside the panel as `fill`): still read, no longer written.
//! v1: the same, with the exact pixels as `u64 n · n × (u64 index, raw element)` (non-finite
//!     pixels, masked ones with masked=keep, exact_above): still read, no longer written.
//! ```

use super::exact;
use super::{FrameInfo, Layout, Window};
use roibin_registry::stream::Reader;
use roibin_registry::{Error, Result};

/// The version this build writes.
pub const VERSION: u8 = 3;

/// Exact pixels as a stream stores them.
pub enum Exact<'a> {
    /// v1: (chunk index, raw element) each.
    Listed(Vec<(usize, &'a [u8])>),
    /// v2 and later: indices, and their values encoded by roi_codec.
    Runs(exact::Parsed<'a>),
}

/// A parsed stream.
pub struct Parsed<'a> {
    pub version: u8,
    pub layout: Layout,
    pub has_bg: bool,
    pub infos: Vec<FrameInfo>,
    pub exact: Exact<'a>,
    pub windows: &'a [u8],
    pub background: &'a [u8],
}

/// Append the head (layout, frames, windows) of a stream of this version.
pub fn write_head(l: Layout, infos: &[FrameInfo], has_bg: bool, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(has_bg as u8);
    for v in [l.frames, l.panels, l.rows, l.cols] {
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    for f in infos {
        out.extend_from_slice(&(f.found as u32).to_le_bytes());
        out.extend_from_slice(&(f.windows.len() as u32).to_le_bytes());
        out.push(f.non_hit as u8);
    }
    for w in infos.iter().flat_map(|f| &f.windows) {
        out.extend_from_slice(&w.y.to_le_bytes());
        out.extend_from_slice(&w.x.to_le_bytes());
        out.push(w.r);
    }
}

/// Append a length-prefixed section.
pub fn write_section(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// Parse a stream of any version up to this one; `es` is the element size and `pixels` the element count
/// of the chunk the stream must be for: what the stream declares is checked against it
/// before anything it sizes is allocated.
pub fn parse<'a>(
    name: &'static str,
    data: &'a [u8],
    es: usize,
    pixels: usize,
) -> Result<Parsed<'a>> {
    let mut r = Reader::new(data, name);
    let version = r.u8()?;
    if version == 0 || version > VERSION {
        return Err(Error::corrupt(
            name,
            format!("stream version {version} is newer than this roibin ({VERSION})"),
        ));
    }
    let has_bg = r.u8()? & 1 == 1;
    let mut d = [0usize; 4];
    for v in d.iter_mut() {
        *v = r.u32()? as usize;
    }
    let layout = Layout {
        frames: d[0],
        panels: d[1],
        rows: d[2],
        cols: d[3],
    };
    if layout.frames > data.len() / 9 + 1 {
        return Err(Error::corrupt(name, "frame count exceeds the stream"));
    }
    let mut counts = Vec::with_capacity(layout.frames);
    for _ in 0..layout.frames {
        let found = r.u32()? as usize;
        let n = r.u32()? as usize;
        let non_hit = r.u8()? & 1 == 1;
        counts.push((found, n, non_hit));
    }
    let mut infos = Vec::with_capacity(layout.frames);
    for (found, n, non_hit) in counts {
        if n > data.len() / 9 {
            return Err(Error::corrupt(name, "window count exceeds the stream"));
        }
        let mut windows = Vec::with_capacity(n);
        for _ in 0..n {
            windows.push(Window {
                y: r.u32()?,
                x: r.u32()?,
                r: r.u8()?,
            });
        }
        infos.push(FrameInfo {
            found,
            windows,
            non_hit,
        });
    }
    let exact = if version == 1 {
        let nn = r.u64()? as usize;
        if nn > data.len() / (8 + es) {
            return Err(Error::corrupt(
                name,
                "non-finite pixel count exceeds the stream",
            ));
        }
        let mut listed = Vec::with_capacity(nn);
        for _ in 0..nn {
            listed.push((r.u64()? as usize, r.take(es)?));
        }
        Exact::Listed(listed)
    } else {
        let declared = layout.frames.saturating_mul(layout.frame_pixels());
        if declared != pixels {
            return Err(Error::corrupt(
                name,
                format!("the stream declares {declared} pixels, the chunk has {pixels}"),
            ));
        }
        Exact::Runs(exact::read(&mut r, pixels)?)
    };
    let wl = r.u64()? as usize;
    let windows = r.take(wl)?;
    let bl = r.u64()? as usize;
    let background = r.take(bl)?;
    if !r.is_empty() {
        return Err(Error::corrupt(name, "trailing bytes after the background"));
    }
    Ok(Parsed {
        version,
        layout,
        has_bg,
        infos,
        exact,
        windows,
        background,
    })
}
