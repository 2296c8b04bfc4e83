//! Frames from a Quantum Detectors Merlin `.mib` file: per frame an ASCII header
//! (`MQ1,<seq>,<header bytes>,<chips>,<cols>,<rows>,<U08|U16|U32>,…`) then the pixels,
//! big-endian. Every frame's header is checked; the frame count is the file size over the
//! frame size. (Raw-mode `R64` files are refused: they need the chip layout to unpack.)

use super::{file_stamp, Info, Item, Source};
use crate::{Error, Result};
use roibin_registry::DType;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// A Merlin source.
pub struct MibSource {
    file: std::fs::File,
    header: usize,
    frame_bytes: usize,
    info: Info,
}

/// (header bytes, cols, rows, dtype) of a frame header.
fn parse_header(h: &[u8]) -> Result<(usize, usize, usize, DType)> {
    let text = String::from_utf8_lossy(&h[..h.len().min(128)]);
    let f: Vec<&str> = text.split(',').collect();
    let bad = || {
        Error::Source(format!(
            "not a Merlin frame header: `{}`",
            text.chars().take(40).collect::<String>()
        ))
    };
    if f.len() < 7 || f[0] != "MQ1" {
        return Err(bad());
    }
    let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad());
    let (header, cols, rows) = (num(f[2])?, num(f[4])?, num(f[5])?);
    let dtype = match f[6].trim() {
        "U08" => DType::U8,
        "U16" => DType::U16,
        "U32" => DType::U32,
        other => {
            return Err(Error::Source(format!(
                "Merlin pixel type {other}: roibin reads U08, U16 and U32 frames (raw R64 frames need the chip layout)"
            )))
        }
    };
    if !(16..=1 << 20).contains(&header)
        || cols == 0
        || rows == 0
        || cols.saturating_mul(rows) > 1 << 28
    {
        return Err(bad());
    }
    Ok((header, cols, rows, dtype))
}

impl MibSource {
    pub fn open(path: &str) -> Result<MibSource> {
        let file =
            std::fs::File::open(path).map_err(|e| Error::Source(format!("`{path}`: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| Error::Source(format!("`{path}`: {e}")))?
            .len() as usize;
        let mut head = vec![0u8; 128.min(len)];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| Error::Source(format!("`{path}`: {e}")))?;
        let (header, cols, rows, dtype) = parse_header(&head)?;
        let frame_bytes = header + cols * rows * dtype.size();
        if len < frame_bytes {
            return Err(Error::Source(format!("`{path}`: shorter than one frame")));
        }
        Ok(MibSource {
            file,
            header,
            frame_bytes,
            info: Info {
                frames: len / frame_bytes,
                height: rows,
                width: cols,
                dtype,
                scan: None,
                mask: None,
                identity: file_stamp(path)?,
                read_path: "Merlin .mib frames".into(),
            },
        })
    }

    fn frame(&self, i: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.frame_bytes];
        self.file
            .read_exact_at(&mut buf, (i * self.frame_bytes) as u64)
            .map_err(|e| Error::Source(format!("frame {i}: {e}")))?;
        let (header, cols, rows, dtype) = parse_header(&buf[..self.header])?;
        if (header, cols, rows, dtype)
            != (
                self.header,
                self.info.width,
                self.info.height,
                self.info.dtype,
            )
        {
            return Err(Error::Source(format!(
                "frame {i}: its header differs from the first frame's"
            )));
        }
        let mut px = buf.split_off(self.header);
        // Big-endian on disk; frames are handed out little-endian.
        match dtype.size() {
            2 => px.chunks_exact_mut(2).for_each(|c| c.reverse()),
            4 => px.chunks_exact_mut(4).for_each(|c| c.reverse()),
            _ => {}
        }
        Ok(px)
    }
}

impl Source for MibSource {
    fn info(&self) -> &Info {
        &self.info
    }

    fn read(&mut self, frames: Range<usize>) -> Vec<Item> {
        frames
            .map(|i| match self.frame(i) {
                Ok(bytes) => Item::Frames {
                    frames: i..i + 1,
                    bytes,
                },
                Err(e) => Item::Failed {
                    frames: i..i + 1,
                    message: e.to_string(),
                },
            })
            .collect()
    }
}
