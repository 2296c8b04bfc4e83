//! Writing a reduction: HDF5 with an NXdata group (h5web, silx and NeXus readers plot it),
//! PNG with a palette, 32-bit float TIFF (`tiff_raw`), JSON, ASCII. The format follows the
//! file's extension; every file is written under a temporary name and renamed when complete.

use crate::engine::Reduction;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// How a map becomes a picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// `gray`, `wb` (white to black), `viridis`, `magma`, `inferno`, `plasma`, `cividis`,
    /// `turbo`.
    pub palette: String,
    pub log: bool,
    pub cmin: Option<f64>,
    pub cmax: Option<f64>,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            palette: "viridis".into(),
            log: false,
            cmin: None,
            cmax: None,
        }
    }
}

/// Palette names.
pub const PALETTES: &[&str] = &[
    "gray", "wb", "viridis", "magma", "inferno", "plasma", "cividis", "turbo",
];

fn gradient(name: &str) -> Result<(colorous::Gradient, bool)> {
    Ok(match name {
        "gray" | "grey" => (colorous::GREYS, true),
        "wb" => (colorous::GREYS, false),
        "viridis" => (colorous::VIRIDIS, false),
        "magma" => (colorous::MAGMA, false),
        "inferno" => (colorous::INFERNO, false),
        "plasma" => (colorous::PLASMA, false),
        "cividis" => (colorous::CIVIDIS, false),
        "turbo" => (colorous::TURBO, false),
        _ => bail!("palette: `{name}` is not one of {}", PALETTES.join(", ")),
    })
}

/// The formats, by extension.
pub const FORMATS: &[&str] = &["h5", "png", "tiff", "json", "txt"];

/// Write `r` to `path` in the format its extension names.
pub fn write(r: &Reduction, path: &Path, style: &Style) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = path
        .file_name()
        .context("the output must name a file")?
        .to_string_lossy()
        .into_owned();
    let tmp = path.with_file_name(format!(".{name}.roibin-partial"));
    let _ = std::fs::remove_file(&tmp);
    let written = match ext.as_str() {
        "h5" | "hdf5" | "nxs" | "nx5" => write_h5(r, &tmp),
        "png" => png_bytes(r, style).and_then(|b| Ok(std::fs::write(&tmp, b)?)),
        "tif" | "tiff" => tiff_bytes(r).and_then(|b| Ok(std::fs::write(&tmp, b)?)),
        "json" => Ok(std::fs::write(&tmp, json(r).to_string())?),
        "txt" | "dat" | "ascii" => Ok(std::fs::write(&tmp, ascii(r))?),
        _ => bail!(
            "out: `{}` has no known extension ({})",
            path.display(),
            FORMATS.join(", ")
        ),
    };
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// The 2-D map of a reduction with one value per scan point.
fn map2d(r: &Reduction) -> Result<(&[f64], usize, usize)> {
    if r.per_point() != 1 {
        bail!(
            "a {} result has {:?} values per scan point: pictures take one (write .h5, .json or .txt)",
            r.algo,
            r.value_shape
        );
    }
    Ok((&r.values, r.scan.0, r.scan.1))
}

/// The map as a PNG (RGBA; NaN transparent).
pub fn png_bytes(r: &Reduction, style: &Style) -> Result<Vec<u8>> {
    let (v, h, w) = map2d(r)?;
    png_of(v, h, w, style, &r.request)
}

/// The map as a 32-bit float grey TIFF.
pub fn tiff_bytes(r: &Reduction) -> Result<Vec<u8>> {
    let (v, h, w) = map2d(r)?;
    tiff_of(v, h, w)
}

/// `h × w` values as a PNG with `style`'s palette and range (RGBA; NaN transparent); the
/// request goes into a text chunk.
pub fn png_of(v: &[f64], h: usize, w: usize, style: &Style, request: &str) -> Result<Vec<u8>> {
    let (grad, reverse) = gradient(&style.palette)?;
    let t = |x: f64| {
        if style.log {
            if x > 0.0 {
                x.log10()
            } else {
                f64::NAN
            }
        } else {
            x
        }
    };
    let finite: Vec<f64> = v.iter().map(|&x| t(x)).filter(|x| x.is_finite()).collect();
    let lo = style
        .cmin
        .map(t)
        .unwrap_or_else(|| finite.iter().copied().fold(f64::INFINITY, f64::min));
    let hi = style
        .cmax
        .map(t)
        .unwrap_or_else(|| finite.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let span = if hi > lo { hi - lo } else { 1.0 };
    // 1024 levels, looked up (evaluating the gradient per pixel costs more than the rest).
    let lut: Vec<colorous::Color> = (0..1024)
        .map(|i| grad.eval_continuous(i as f64 / 1023.0))
        .collect();
    let mut rgba = Vec::with_capacity(h * w * 4);
    for &x in v {
        let x = t(x);
        if !x.is_finite() {
            rgba.extend_from_slice(&[0, 0, 0, 0]);
            continue;
        }
        let mut f = ((x - lo) / span).clamp(0.0, 1.0);
        if reverse {
            f = 1.0 - f;
        }
        let c = lut[(f * 1023.0).round() as usize];
        rgba.extend_from_slice(&[c.r, c.g, c.b, 255]);
    }
    let mut out = vec![];
    {
        let mut e = png::Encoder::new(&mut out, w as u32, h as u32);
        e.set_color(png::ColorType::Rgba);
        e.set_depth(png::BitDepth::Eight);
        // Pictures are looked at, not archived: fast deflate (most of a PNG's time otherwise).
        e.set_compression(png::Compression::Fast);
        e.add_text_chunk("roibin-request".into(), request.to_string())?;
        let mut wr = e.write_header()?;
        wr.write_image_data(&rgba)?;
    }
    Ok(out)
}

/// `h × w` values as a 32-bit float grey TIFF.
pub fn tiff_of(v: &[f64], h: usize, w: usize) -> Result<Vec<u8>> {
    let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    tiff::encoder::TiffEncoder::new(&mut out)?
        .write_image::<tiff::encoder::colortype::Gray32Float>(w as u32, h as u32, &data)?;
    Ok(out.into_inner())
}

/// `h × w` values as text rows (`nan` for NaN).
pub fn ascii_of(v: &[f64], w: usize) -> String {
    let mut s = String::new();
    for row in v.chunks(w.max(1)) {
        s += &row
            .iter()
            .map(|&x| fmt_value(x))
            .collect::<Vec<_>>()
            .join(" ");
        s.push('\n');
    }
    s
}

fn fmt_value(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else {
        format!("{x:.9e}")
    }
}

/// `h × w` values as JSON rows (`null` for NaN).
pub fn json_of(v: &[f64], w: usize) -> serde_json::Value {
    serde_json::Value::Array(
        v.chunks(w.max(1))
            .map(|row| serde_json::Value::Array(row.iter().map(|&x| num(x)).collect()))
            .collect(),
    )
}

fn num(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `v` as nested arrays of `shape` (a number for `[]`).
fn nest(v: &[f64], shape: &[usize]) -> serde_json::Value {
    match shape {
        [] => num(v[0]),
        [_, rest @ ..] => {
            let inner: usize = rest.iter().product();
            serde_json::Value::Array(v.chunks(inner.max(1)).map(|c| nest(c, rest)).collect())
        }
    }
}

/// The reduction as JSON: `data` nested as scan rows × scan cols (× values), null for NaN.
pub fn json(r: &Reduction) -> serde_json::Value {
    let n = r.per_point();
    let data: Vec<serde_json::Value> = r
        .values
        .chunks(r.scan.1 * n)
        .map(|row| {
            serde_json::Value::Array(row.chunks(n).map(|p| nest(p, &r.value_shape)).collect())
        })
        .collect();
    serde_json::json!({
        "request": r.request,
        "algo": r.algo,
        "signal": r.signal,
        "scan": [r.scan.0, r.scan.1],
        "value_shape": r.value_shape,
        "value_axes": r.value_axes.iter().map(|(k, v)| serde_json::json!({"name": k, "values": v.iter().map(|&x| num(x)).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "data": data,
        "failed": r.failed.iter().map(|(f, m)| serde_json::json!({"frame": f, "error": m})).collect::<Vec<_>>(),
        "stats": r.stats,
    })
}

/// The reduction as text: a `#` header, then the map's rows (one value per point), or one
/// line `row col values…` per point.
pub fn ascii(r: &Reduction) -> String {
    let mut s = format!(
        "# roibin stxm {}\n# signal {} scan {}x{} values {:?}\n",
        r.request, r.signal, r.scan.0, r.scan.1, r.value_shape
    );
    let n = r.per_point();
    let f = fmt_value;
    for (row, vals) in r.values.chunks(r.scan.1 * n).enumerate() {
        if n == 1 {
            s += &vals.iter().map(|&x| f(x)).collect::<Vec<_>>().join(" ");
            s.push('\n');
        } else {
            for (col, p) in vals.chunks(n).enumerate() {
                s += &format!(
                    "{row} {col} {}\n",
                    p.iter().map(|&x| f(x)).collect::<Vec<_>>().join(" ")
                );
            }
        }
    }
    s
}

fn attr_str(loc: &hdf5::Location, name: &str, value: &str) -> Result<()> {
    let v: hdf5::types::VarLenUnicode = value.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    loc.new_attr::<hdf5::types::VarLenUnicode>()
        .create(name)?
        .write_scalar(&v)?;
    Ok(())
}

/// NXentry `/entry` with NXdata `/entry/stxm`: the signal dataset, `y` and `x` scan axes (and
/// the value axes), `@signal`, `@axes`, the request as an attribute.
fn write_h5(r: &Reduction, path: &Path) -> Result<()> {
    let f = hdf5::File::create(path)?;
    attr_str(&f, "default", "entry")?;
    let entry = f.create_group("entry")?;
    attr_str(&entry, "NX_class", "NXentry")?;
    attr_str(&entry, "default", "stxm")?;
    let g = entry.create_group("stxm")?;
    attr_str(&g, "NX_class", "NXdata")?;
    attr_str(&g, "signal", &r.signal)?;
    attr_str(&g, "request", &r.request)?;
    let mut shape = vec![r.scan.0, r.scan.1];
    shape.extend(&r.value_shape);
    let data = ndarray::ArrayD::from_shape_vec(shape, r.values.clone())?;
    g.new_dataset_builder()
        .with_data(&data)
        .create(r.signal.as_str())?;
    g.new_dataset_builder()
        .with_data(&(0..r.scan.0).map(|i| i as f64).collect::<Vec<_>>())
        .create("y")?;
    g.new_dataset_builder()
        .with_data(&(0..r.scan.1).map(|i| i as f64).collect::<Vec<_>>())
        .create("x")?;
    let mut axes = vec!["y".to_string(), "x".to_string()];
    for (i, _) in r.value_shape.iter().enumerate() {
        match r.value_axes.get(i) {
            Some((name, values)) if name != "dpc" => {
                g.new_dataset_builder()
                    .with_data(values.as_slice())
                    .create(name.as_str())?;
                axes.push(name.clone());
            }
            _ => axes.push(".".into()),
        }
    }
    let axes: Vec<hdf5::types::VarLenUnicode> =
        axes.iter().map(|a| a.parse().expect("ascii")).collect();
    g.new_attr::<hdf5::types::VarLenUnicode>()
        .shape(axes.len())
        .create("axes")?
        .write(&axes)?;
    if !r.failed.is_empty() {
        let frames: Vec<u64> = r.failed.iter().map(|f| f.0 as u64).collect();
        g.new_dataset_builder()
            .with_data(frames.as_slice())
            .create("failed_frames")?;
    }
    f.close()?;
    Ok(())
}
