//! Per-pixel maps (masks, radius maps) from `.npy` files, through `npyz`.
//!
//! These are encode-time inputs of peak finders and `roibin`: a decoder never reads one (see
//! [`roibin_registry::Purpose`]). The header's dtype and shape are checked against the frame
//! the map is for; only a regular file is opened (never a FIFO or a device).

use super::peaks::Panels;
use npyz::{NpyFile, TypeChar, WriterBuilder};
use roibin_registry::{Error, Result};
use std::sync::{Arc, Mutex};

/// Largest map file read: a float64 map of a 16-megapixel detector is 128 MiB.
const MAX_MAP_BYTES: u64 = 1 << 30;

/// The map in `path` for frames of `p`, as f64, one value per pixel in raw layout.
///
/// Accepted shapes: `[panels·rows, cols]`, `[panels, rows, cols]` (and `[rows, cols]` for one
/// panel); dtypes: bool, (u)int8/16/32/64 and float32/64, either byte order, C order.
/// Parsed files are kept per (path, size, modification time): a finder and its `roibin` both
/// read the same mask, and every dataset of a detector shares it.
pub fn read_map(codec: &str, path: &str, p: Panels) -> Result<Arc<Vec<f64>>> {
    type Key = (String, u64, Option<std::time::SystemTime>, Panels);
    static CACHE: Mutex<Vec<(Key, Arc<Vec<f64>>)>> = Mutex::new(Vec::new());
    let key: Option<Key> = std::fs::metadata(path)
        .ok()
        .map(|m| (path.to_string(), m.len(), m.modified().ok(), p));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, v)) = cache.iter().find(|(k, _)| Some(k) == key.as_ref()) {
        return Ok(v.clone());
    }
    let v = Arc::new(parse(codec, path, p)?);
    if let Some(k) = key {
        cache.retain(|(old, _)| old.0 != k.0);
        cache.push((k, v.clone()));
        if cache.len() > 8 {
            cache.remove(0);
        }
    }
    Ok(v)
}

fn parse(codec: &str, path: &str, p: Panels) -> Result<Vec<f64>> {
    let err = |m: String| Error::option(format!("{codec}:{path}"), m);
    let bytes = read_regular(path).map_err(|e| err(format!("cannot read `{path}`: {e}")))?;
    let npy =
        NpyFile::new(&bytes[..]).map_err(|e| err(format!("`{path}` is not a .npy file: {e}")))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(err(format!(
            "`{path}`: Fortran-order arrays are not supported; save with np.ascontiguousarray"
        )));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let fits = shape == [p.panels * p.rows, p.cols] || shape == [p.panels, p.rows, p.cols];
    if !fits {
        return Err(err(format!(
            "`{path}` has shape {shape:?} but a frame is {:?} (or {:?}): the mask or radius map must have the frame's raw shape",
            [p.panels * p.rows, p.cols],
            [p.panels, p.rows, p.cols]
        )));
    }
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(err(format!(
            "`{path}`: structured arrays are not supported"
        )));
    };
    let unsupported = || {
        err(format!(
            "`{path}`: dtype `{ts}` not supported (use bool, integers or float32/64)"
        ))
    };
    let io = |e: std::io::Error| err(format!("`{path}`: {e}"));
    let v: Vec<f64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Bool, 1) => conv(npy.into_vec::<bool>().map_err(io)?, |b| b as u8 as f64),
        (TypeChar::Uint, 1) => conv(npy.into_vec::<u8>().map_err(io)?, f64::from),
        (TypeChar::Int, 1) => conv(npy.into_vec::<i8>().map_err(io)?, f64::from),
        (TypeChar::Uint, 2) => conv(npy.into_vec::<u16>().map_err(io)?, f64::from),
        (TypeChar::Int, 2) => conv(npy.into_vec::<i16>().map_err(io)?, f64::from),
        (TypeChar::Uint, 4) => conv(npy.into_vec::<u32>().map_err(io)?, f64::from),
        (TypeChar::Int, 4) => conv(npy.into_vec::<i32>().map_err(io)?, f64::from),
        (TypeChar::Uint, 8) => conv(npy.into_vec::<u64>().map_err(io)?, |x| x as f64),
        (TypeChar::Int, 8) => conv(npy.into_vec::<i64>().map_err(io)?, |x| x as f64),
        (TypeChar::Float, 4) => conv(npy.into_vec::<f32>().map_err(io)?, f64::from),
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(io)?,
        _ => return Err(unsupported()),
    };
    if v.len() != p.pixels() {
        return Err(err(format!(
            "`{path}` holds {} values but a frame has {} pixels",
            v.len(),
            p.pixels()
        )));
    }
    Ok(v)
}

fn conv<T: Copy>(v: Vec<T>, f: impl Fn(T) -> f64) -> Vec<f64> {
    v.into_iter().map(f).collect()
}

/// The bytes of a regular file of at most [`MAX_MAP_BYTES`]; FIFOs and devices are refused
/// before anything is read (opened non-blocking, so opening a FIFO cannot hang).
fn read_regular(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_MAP_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file of at most {MAX_MAP_BYTES} bytes"),
        ));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MAP_BYTES).read_to_end(&mut out)?;
    Ok(out)
}

/// Element data for [`write_npy`].
pub enum NpyData<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
}

/// Write a uint8 or float32 .npy file (for `roibin synth` and tests).
pub fn write_npy(path: &std::path::Path, shape: &[usize], data: NpyData) -> std::io::Result<()> {
    match data {
        NpyData::U8(v) => write_typed(path, shape, v),
        NpyData::F32(v) => write_typed(path, shape, v),
    }
}

fn write_typed<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &std::path::Path,
    shape: &[usize],
    v: &[T],
) -> std::io::Result<()> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut file)
        .begin_nd()?;
    w.extend(v.iter().copied())?;
    w.finish()?;
    std::io::Write::flush(&mut file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("roibin-npy-{}-{name}", std::process::id()))
    }

    #[test]
    fn reads_written_maps_and_checks_shape_and_dtype() {
        let p = Panels {
            panels: 2,
            rows: 3,
            cols: 4,
        };
        let f = tmp("ok.npy");
        let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
        write_npy(&f, &[6, 4], NpyData::F32(&v)).unwrap();
        assert_eq!(parse("t", f.to_str().unwrap(), p).unwrap()[23], 23.0);
        write_npy(&f, &[2, 3, 4], NpyData::U8(&[1; 24])).unwrap();
        assert_eq!(parse("t", f.to_str().unwrap(), p).unwrap(), vec![1.0; 24]);
        // Same element count, wrong shape: refused (the header is read, not just the size).
        write_npy(&f, &[4, 6], NpyData::U8(&[1; 24])).unwrap();
        let e = parse("t", f.to_str().unwrap(), p).unwrap_err().to_string();
        assert!(e.contains("shape [4, 6]"), "{e}");
        std::fs::write(&f, b"not npy").unwrap();
        assert!(parse("t", f.to_str().unwrap(), p).is_err());
        std::fs::remove_file(&f).ok();
        // A device is never read.
        let e = parse("t", "/dev/zero", p).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
