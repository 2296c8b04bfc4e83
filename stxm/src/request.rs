//! dada's request grammar: one set of words for the command line, the HTTP API and Python.
//!
//! A request is a list of `key=value` parameters (`algo=brightfield&signal=comh&roi=10,10,64,64`
//! in a URL, `--algo brightfield --signal comh --roi 10,10,64,64` on the command line).
//! [`Request::canonical`] writes it back in one fixed form: the cache key, and what an output
//! stores as its `request` attribute.

use crate::Error;
use std::fmt;

/// A rectangle `x,y,w,h` in pixels (x along columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// `polarroi=cx,cy;qmin,qmax;phimin,phimax`: a sector of an annulus around (cx, cy), radii in
/// (processed) pixels, angles in degrees counter-clockwise from +x (rows grow downwards, so
/// +90° points to increasing rows). The centre may lie outside the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polar {
    pub cx: f64,
    pub cy: f64,
    pub qmin: f64,
    pub qmax: f64,
    pub phimin: f64,
    pub phimax: f64,
}

/// `radial=cx,cy;qmin,qmax;nq`: `nq` equal rings from qmin to qmax.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Radial {
    pub cx: f64,
    pub cy: f64,
    pub qmin: f64,
    pub qmax: f64,
    pub nq: usize,
}

/// `gridroi=x,y,w,h;nx,ny[;dx,dy]`: nx × ny rectangles of w × h, the first at (x, y), the
/// next `dx` columns / `dy` rows further (default w, h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridRoi {
    pub first: Rect,
    pub nx: usize,
    pub ny: usize,
    pub dx: usize,
    pub dy: usize,
}

/// Where a pixel mask comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    /// The source's own (a DECTRIS `pixel_mask`), if it has one.
    Auto,
    /// No mask.
    None,
    /// A file: `.npy` (bool or integers, non-zero = bad) or `FILE.h5:/dataset`.
    File(String),
}

/// A frame of the scan (`N`) or an image in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Frame(usize),
    File(String),
}

/// One STXM request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub algo: String,
    /// The algorithm's signal (its default when not given).
    pub signal: Option<String>,
    /// Scan shape (rows, cols); None: the dataset's own 4-D shape, else one row.
    pub scan: Option<(usize, usize)>,
    /// First frame of the scan in the source.
    pub first: usize,
    pub roi: Option<Rect>,
    /// Integer binning (bx along columns, by along rows).
    pub binning: (usize, usize),
    pub mask: Mask,
    pub empty: Option<Image>,
    pub difference: Option<Image>,
    pub polarroi: Option<Polar>,
    pub radial: Option<Radial>,
    pub gridroi: Option<GridRoi>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            algo: "brightfield".into(),
            signal: None,
            scan: None,
            first: 0,
            roi: None,
            binning: (1, 1),
            mask: Mask::Auto,
            empty: None,
            difference: None,
            polarroi: None,
            radial: None,
            gridroi: None,
        }
    }
}

/// Largest ring count, grid size or scan side a request may ask for.
pub const MAX_COUNT: usize = 1 << 20;

fn bad(param: &str, value: &str, expected: &str) -> Error {
    Error::Request {
        param: param.into(),
        message: format!("`{value}` is not {expected}"),
    }
}

fn numbers<T: std::str::FromStr>(
    param: &str,
    value: &str,
    n: usize,
    expected: &str,
) -> Result<Vec<T>, Error> {
    let v: Vec<T> = value
        .split(',')
        .map(|s| s.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(param, value, expected))?;
    if v.len() != n {
        return Err(bad(param, value, expected));
    }
    Ok(v)
}

fn finite(param: &str, value: &str, v: &[f64], expected: &str) -> Result<(), Error> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(bad(param, value, expected))
    }
}

fn count(param: &str, v: usize, what: &str) -> Result<usize, Error> {
    if v == 0 || v > MAX_COUNT {
        return Err(Error::Request {
            param: param.into(),
            message: format!("{what} must be 1 to {MAX_COUNT}, not {v}"),
        });
    }
    Ok(v)
}

fn parse_rect(param: &str, value: &str) -> Result<Rect, Error> {
    let v = numbers::<usize>(param, value, 4, "x,y,w,h (non-negative integers)")?;
    if v[2] == 0 || v[3] == 0 {
        return Err(Error::Request {
            param: param.into(),
            message: format!("`{value}`: width and height must be at least 1"),
        });
    }
    Ok(Rect {
        x: v[0],
        y: v[1],
        w: v[2],
        h: v[3],
    })
}

fn parse_image(value: &str) -> Image {
    match value.parse::<usize>() {
        Ok(n) => Image::Frame(n),
        Err(_) => Image::File(value.into()),
    }
}

fn parts<'a>(
    param: &str,
    value: &'a str,
    n: &[usize],
    expected: &str,
) -> Result<Vec<&'a str>, Error> {
    let p: Vec<&str> = value.split(';').collect();
    if !n.contains(&p.len()) {
        return Err(bad(param, value, expected));
    }
    Ok(p)
}

impl Request {
    /// Build a request from `key=value` pairs; an unknown key or a bad value is an error that
    /// names the parameter.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Request, Error> {
        let mut r = Request::default();
        for (k, v) in pairs {
            r.set(k, v)?;
        }
        Ok(r)
    }

    /// Parse a URL query string (`algo=radial&radial=...`, percent-decoding left to the caller).
    pub fn from_query(q: &str) -> Result<Request, Error> {
        Request::from_pairs(
            q.split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| kv.split_once('=').unwrap_or((kv, ""))),
        )
    }

    /// Set one parameter.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let value = value.trim();
        match key {
            "algo" => self.algo = value.into(),
            "signal" => self.signal = Some(value.into()),
            "scan" => {
                let (r, c) = value
                    .split_once('x')
                    .ok_or_else(|| bad(key, value, "ROWSxCOLS, e.g. 32x32"))?;
                let r: usize = r.trim().parse().map_err(|_| bad(key, value, "ROWSxCOLS"))?;
                let c: usize = c.trim().parse().map_err(|_| bad(key, value, "ROWSxCOLS"))?;
                self.scan = Some((count(key, r, "scan rows")?, count(key, c, "scan columns")?));
            }
            "first" => self.first = value.parse().map_err(|_| bad(key, value, "a frame number"))?,
            "roi" => self.roi = Some(parse_rect(key, value)?),
            "binning" => {
                let v = numbers::<usize>(key, value, 2, "bx,by (integers ≥ 1)")?;
                if v[0] == 0 || v[1] == 0 || v[0] > 4096 || v[1] > 4096 {
                    return Err(bad(key, value, "bx,by (integers 1 to 4096)"));
                }
                self.binning = (v[0], v[1]);
            }
            "mask" => {
                self.mask = match value {
                    "auto" | "" => Mask::Auto,
                    "none" => Mask::None,
                    f => Mask::File(f.into()),
                }
            }
            "empty" => self.empty = Some(parse_image(value)),
            "difference" => self.difference = Some(parse_image(value)),
            "polarroi" => {
                let expected = "cx,cy;qmin,qmax;phimin,phimax";
                let p = parts(key, value, &[3], expected)?;
                let c = numbers::<f64>(key, p[0], 2, expected)?;
                let q = numbers::<f64>(key, p[1], 2, expected)?;
                let a = numbers::<f64>(key, p[2], 2, expected)?;
                finite(key, value, &[c[0], c[1], q[0], q[1], a[0], a[1]], expected)?;
                if !(q[0] >= 0.0 && q[1] > q[0]) {
                    return Err(Error::Request {
                        param: key.into(),
                        message: format!("radii {},{}: need 0 ≤ qmin < qmax", q[0], q[1]),
                    });
                }
                if !(a[1] > a[0] && a[1] - a[0] <= 360.0) {
                    return Err(Error::Request {
                        param: key.into(),
                        message: format!(
                            "angles {},{}: need phimin < phimax ≤ phimin + 360 (degrees)",
                            a[0], a[1]
                        ),
                    });
                }
                self.polarroi = Some(Polar {
                    cx: c[0],
                    cy: c[1],
                    qmin: q[0],
                    qmax: q[1],
                    phimin: a[0],
                    phimax: a[1],
                });
            }
            "radial" => {
                let expected = "cx,cy;qmin,qmax;nq";
                let p = parts(key, value, &[3], expected)?;
                let c = numbers::<f64>(key, p[0], 2, expected)?;
                let q = numbers::<f64>(key, p[1], 2, expected)?;
                let nq: usize = p[2].trim().parse().map_err(|_| bad(key, value, expected))?;
                finite(key, value, &[c[0], c[1], q[0], q[1]], expected)?;
                if !(q[0] >= 0.0 && q[1] > q[0]) {
                    return Err(Error::Request {
                        param: key.into(),
                        message: format!("radii {},{}: need 0 ≤ qmin < qmax", q[0], q[1]),
                    });
                }
                self.radial = Some(Radial {
                    cx: c[0],
                    cy: c[1],
                    qmin: q[0],
                    qmax: q[1],
                    nq: count(key, nq, "nq")?,
                });
            }
            "gridroi" => {
                let expected = "x,y,w,h;nx,ny[;dx,dy]";
                let p = parts(key, value, &[2, 3], expected)?;
                let first = parse_rect(key, p[0])?;
                let n = numbers::<usize>(key, p[1], 2, expected)?;
                let d = match p.get(2) {
                    Some(s) => numbers::<usize>(key, s, 2, expected)?,
                    None => vec![first.w, first.h],
                };
                self.gridroi = Some(GridRoi {
                    first,
                    nx: count(key, n[0], "nx")?,
                    ny: count(key, n[1], "ny")?,
                    dx: d[0],
                    dy: d[1],
                });
            }
            _ => {
                return Err(Error::Request {
                    param: key.into(),
                    message: "unknown parameter (known: algo, signal, scan, first, roi, binning, mask, empty, difference, polarroi, radial, gridroi)".into(),
                })
            }
        }
        Ok(())
    }

    /// The request in one fixed form (parameters in a fixed order, defaults left out).
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "algo={}", self.algo)?;
        if let Some(s) = &self.signal {
            write!(f, "&signal={s}")?;
        }
        if let Some((r, c)) = self.scan {
            write!(f, "&scan={r}x{c}")?;
        }
        if self.first != 0 {
            write!(f, "&first={}", self.first)?;
        }
        if let Some(r) = self.roi {
            write!(f, "&roi={},{},{},{}", r.x, r.y, r.w, r.h)?;
        }
        if self.binning != (1, 1) {
            write!(f, "&binning={},{}", self.binning.0, self.binning.1)?;
        }
        match &self.mask {
            Mask::Auto => {}
            Mask::None => write!(f, "&mask=none")?,
            Mask::File(p) => write!(f, "&mask={p}")?,
        }
        for (k, v) in [("empty", &self.empty), ("difference", &self.difference)] {
            match v {
                Some(Image::Frame(n)) => write!(f, "&{k}={n}")?,
                Some(Image::File(p)) => write!(f, "&{k}={p}")?,
                None => {}
            }
        }
        if let Some(p) = self.polarroi {
            write!(
                f,
                "&polarroi={},{};{},{};{},{}",
                p.cx, p.cy, p.qmin, p.qmax, p.phimin, p.phimax
            )?;
        }
        if let Some(p) = self.radial {
            write!(
                f,
                "&radial={},{};{},{};{}",
                p.cx, p.cy, p.qmin, p.qmax, p.nq
            )?;
        }
        if let Some(g) = self.gridroi {
            let r = g.first;
            write!(
                f,
                "&gridroi={},{},{},{};{},{};{},{}",
                r.x, r.y, r.w, r.h, g.nx, g.ny, g.dx, g.dy
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_parses_back() {
        let q = "algo=polarroi&polarroi=-10,20.5;3,40;-30,90&roi=1,2,30,40&binning=2,2&scan=4x8&first=3&mask=none&empty=0";
        let r = Request::from_query(q).unwrap();
        assert_eq!(Request::from_query(&r.canonical()).unwrap(), r);
        assert_eq!(r.polarroi.unwrap().cx, -10.0);
        let g = Request::from_query("algo=gridroi&gridroi=0,0,8,8;3,2").unwrap();
        assert_eq!(g.gridroi.unwrap().dx, 8);
        assert_eq!(Request::from_query(&g.canonical()).unwrap(), g);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (q, param) in [
            ("roi=1,2,3", "roi"),
            ("roi=1,2,0,4", "roi"),
            ("polarroi=0,0;5,2;0,90", "polarroi"),
            ("polarroi=0,0;1,2;90,0", "polarroi"),
            ("polarroi=0,0;1,2;0,400", "polarroi"),
            ("polarroi=nan,0;1,2;0,40", "polarroi"),
            ("radial=0,0;1,2;0", "radial"),
            ("scan=12", "scan"),
            ("binning=0,2", "binning"),
            ("colour=red", "colour"),
        ] {
            match Request::from_query(q) {
                Err(Error::Request { param: p, .. }) => assert_eq!(p, param, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }
}
