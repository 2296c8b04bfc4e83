//! cd_values ⇄ (graph spec, dtype, chunk shape).
//!
//! HDF5 keeps a filter's parameters as an array of `unsigned int`. Two forms:
//! ```text
//! user:     [USER_MAGIC, spec_len, spec packed 4 bytes a word (LE)...]           (roibin cdvalues)
//! resolved: [RESOLVED_MAGIC, dtype code, rank, chunk dims..., spec_len, spec...] (set_local)
//! ```
//! Empty cd_values mean `auto`. Every word stays below 2^31, so no client mangles it.

use roibin_registry::{ArrayMeta, DType, Error, Result};

/// The filter id: in HDF5's testing range 256–511 until registration with The HDF Group.
pub const FILTER_ID: i32 = 443;
/// First word of the user form.
pub const USER_MAGIC: u32 = 0x5242_5501;
/// First word of the resolved form.
pub const RESOLVED_MAGIC: u32 = 0x5242_5201;
/// Most cd_values words we write (HDF5 readers cap them near 256).
pub const MAX_WORDS: usize = 250;

/// What cd_values say.
#[derive(Debug, Clone, PartialEq)]
pub enum CdValues {
    /// A spec from the user, not yet fitted to a dataset (empty = `auto`).
    User(String),
    /// A spec fitted by set_local to a dataset's dtype and chunk shape.
    Resolved { spec: String, chunk: ArrayMeta },
}

fn pack(spec: &str, out: &mut Vec<u32>) -> Result<()> {
    out.push(spec.len() as u32);
    for c in spec.as_bytes().chunks(4) {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        out.push(u32::from_le_bytes(w));
    }
    if out.len() > MAX_WORDS {
        return Err(Error::Other(format!(
            "spec `{spec}` needs {} cd_values words, more than the {MAX_WORDS} HDF5 clients keep; shorten it",
            out.len()
        )));
    }
    Ok(())
}

fn unpack(words: &[u32]) -> Result<String> {
    let bad = || Error::Other("cd_values: spec length does not match the words present".into());
    let (&len, rest) = words.split_first().ok_or_else(bad)?;
    let len = len as usize;
    if rest.len() != len.div_ceil(4) {
        return Err(bad());
    }
    let bytes: Vec<u8> = rest
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .take(len)
        .collect();
    String::from_utf8(bytes).map_err(|_| Error::Other("cd_values: spec is not UTF-8".into()))
}

impl CdValues {
    /// Encode to words.
    pub fn to_words(&self) -> Result<Vec<u32>> {
        let mut w = vec![];
        match self {
            CdValues::User(spec) => {
                w.push(USER_MAGIC);
                pack(spec, &mut w)?;
            }
            CdValues::Resolved { spec, chunk } => {
                w.push(RESOLVED_MAGIC);
                w.push(chunk.dtype.code() as u32);
                w.push(chunk.rank() as u32);
                for &d in &chunk.shape {
                    w.push(
                        u32::try_from(d)
                            .map_err(|_| Error::Other(format!("chunk dimension {d} too large")))?,
                    );
                }
                pack(spec, &mut w)?;
            }
        }
        Ok(w)
    }

    /// Decode from words; errors say what is wrong with them.
    pub fn from_words(w: &[u32]) -> Result<CdValues> {
        match w.first() {
            None => Ok(CdValues::User(String::new())),
            Some(&USER_MAGIC) => Ok(CdValues::User(unpack(&w[1..])?)),
            Some(&RESOLVED_MAGIC) => {
                let bad = || Error::Other("cd_values: truncated resolved header".into());
                let dtype = DType::from_code(*w.get(1).ok_or_else(bad)?)?;
                let rank = *w.get(2).ok_or_else(bad)? as usize;
                if !(1..=32).contains(&rank) || w.len() < 3 + rank + 1 {
                    return Err(bad());
                }
                let shape: Vec<usize> = w[3..3 + rank].iter().map(|&d| d as usize).collect();
                Ok(CdValues::Resolved {
                    spec: unpack(&w[3 + rank..])?,
                    chunk: ArrayMeta::new(dtype, shape),
                })
            }
            Some(&m) => Err(Error::Other(format!(
                "cd_values start with {m:#x}, not a roibin header; make them with `roibin cdvalues SPEC`"
            ))),
        }
    }

    /// The graph text to fit to a dataset: a user's spec (`@FILE` read here, at dataset
    /// creation, from the user's own cd_values) or an already resolved one, taken as graph
    /// text only. A resolved spec is never read as a file name: a file someone hands you
    /// cannot make `set_local` (run when a client reuses its filter settings, as `h5repack
    /// -l` does) open a path.
    pub fn spec_for_set_local(&self) -> Result<String> {
        match self {
            CdValues::User(_) => roibin_registry::spec::spec_text(self.spec()),
            CdValues::Resolved { spec, .. } => Ok(spec.clone()),
        }
    }

    /// The spec text (`auto` for empty user values).
    pub fn spec(&self) -> &str {
        match self {
            CdValues::User(s) if s.trim().is_empty() => "auto",
            CdValues::User(s) | CdValues::Resolved { spec: s, .. } => s,
        }
    }
}

/// Fit `spec` (graph text, never `@FILE`: the caller resolves that for user input only) to a
/// dataset's dtype and chunk shape: validate it and return the resolved cd_values. The
/// stored spec leaves out run-time options (`threads`), so a file's bytes do not depend on
/// the thread allocation it was written with.
pub fn resolve(spec: &str, chunk: &ArrayMeta) -> Result<CdValues> {
    let graph: roibin_registry::Graph = spec.parse()?;
    // Peak finders produce peak lists, not encodings: a dataset of them could not be read.
    if let Some(s) = graph
        .stages
        .iter()
        .find(|s| roibin_compressors::detector::peaks::FINDERS.contains(&s.name.as_str()))
    {
        return Err(roibin_registry::Error::Other(format!(
            "`{}` is a peak finder: its output is a peak list that cannot be decoded; use it inside roibin(peaks={}(...))",
            s.name, s.name
        )));
    }
    let pipeline = roibin_compressors::pipeline(&graph, chunk)?;
    if pipeline.canonical().uses("given") && !roibin_compressors::detector::roibin::given_allowed()
    {
        return Err(roibin_registry::Error::Other(
            "peaks=given takes centres from the writer (roibin compress --peaks GROUP); in HDF5 clients use a finder, e.g. roibin(peaks=pf8)".into(),
        ));
    }
    Ok(CdValues::Resolved {
        spec: pipeline.stored_spec().to_string(),
        chunk: chunk.clone(),
    })
}

/// The h5py `compression_opts` tuple and the h5repack `UD=` filter string for `spec`.
///
/// ```
/// let (tuple, ud) = h5roibin::cdvalues::client_strings("bitshuffle|lz4").unwrap();
/// assert!(tuple.starts_with('(') && ud.starts_with("UD=443,0,"));
/// ```
pub fn client_strings(spec: &str) -> Result<(String, String)> {
    let _: roibin_registry::Graph = roibin_registry::spec::spec_text(spec)?.parse()?;
    let words = CdValues::User(spec.to_string()).to_words()?;
    let list: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let tuple = format!("({},)", list.join(", "));
    let ud = format!("UD={FILTER_ID},0,{},{}", words.len(), list.join(","));
    Ok((tuple, ud))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_forms() {
        for spec in ["", "a", "abcd", "bitshuffle|zstd(level=5)"] {
            let u = CdValues::User(spec.into());
            assert_eq!(CdValues::from_words(&u.to_words().unwrap()).unwrap(), u);
            let r = CdValues::Resolved {
                spec: spec.into(),
                chunk: ArrayMeta::new(DType::U16, vec![1, 2167, 2070]),
            };
            let w = r.to_words().unwrap();
            assert!(w.iter().all(|&x| x < 1 << 31));
            assert_eq!(CdValues::from_words(&w).unwrap(), r);
        }
        assert_eq!(CdValues::from_words(&[]).unwrap().spec(), "auto");
        assert!(CdValues::from_words(&[7, 1, 2])
            .unwrap_err()
            .to_string()
            .contains("roibin cdvalues"));
        assert!(CdValues::from_words(&[USER_MAGIC, 9, 0]).is_err());
        assert!(CdValues::User("x".repeat(2000)).to_words().is_err());
    }
}
