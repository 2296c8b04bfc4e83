//! The chunk container every encoded chunk starts with.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "RBIN"
//! 4       1     format version (1)
//! 5       1     flags (bit 0: payload stored raw)
//! 6       1     dtype code (see DType::code)
//! 7       1     rank r (1..=8)
//! 8       8r    shape, u64 LE, slowest dimension first
//! ..      2     spec length n, u16 LE
//! ..      n     canonical graph spec, UTF-8
//! ..      1     section count k (1..=16)
//! ..      8k    section lengths, u64 LE
//! ..      ..    sections, back to back
//! end-4   4     CRC-32C of every byte before it, u32 LE
//! ```
//! Decoding needs nothing but these bytes.

use crate::pipeline::Pipeline;
use crate::spec::Graph;
use crate::stream::Reader;
use crate::{ArrayMeta, DType, DataKind, Error, Result};

/// The 4-byte magic at the start of every chunk.
pub const MAGIC: &[u8; 4] = b"RBIN";
/// The container format version this build writes.
pub const FORMAT_VERSION: u8 = 1;
const FLAG_RAW: u8 = 1;
/// Largest chunk we agree to decode: HDF5's own limit on a chunk (4 GiB); guards allocations
/// against corrupted headers.
pub const MAX_CHUNK_BYTES: usize = 1 << 32;

/// A parsed container header plus borrowed sections.
#[derive(Debug, Clone, PartialEq)]
pub struct Header<'a> {
    pub version: u8,
    pub raw: bool,
    pub meta: ArrayMeta,
    pub spec: &'a str,
    pub sections: Vec<&'a [u8]>,
}

/// Encode `data` (of `meta`) with `graph`, falling back to raw storage when encoding does not shrink.
///
/// ```
/// use roibin_registry::{container, spec::Graph, ArrayMeta, DType};
/// let meta = ArrayMeta::new(DType::U8, vec![4]);
/// // An empty graph is the identity, so the container falls back to raw storage.
/// let enc = container::encode(&Graph { stages: vec![] }, &meta, &[1, 2, 3, 4]).unwrap();
/// assert_eq!(container::decode(&enc).unwrap(), (meta, vec![1, 2, 3, 4]));
/// ```
pub fn encode(graph: &Graph, meta: &ArrayMeta, data: &[u8]) -> Result<Vec<u8>> {
    let pipeline = Pipeline::build(graph, &DataKind::Array(meta.clone()), "")?;
    encode_with(&pipeline, meta, data)
}

/// Like [`encode`] with a pipeline built once for many chunks of the same kind.
pub fn encode_with(pipeline: &Pipeline, meta: &ArrayMeta, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(pipeline, meta, data, &mut out)?;
    Ok(out)
}

/// Encode into `out` (cleared first): the pipeline writes its payload straight after the
/// header, so a reused `out` makes a chunk loop allocation-free after warm-up.
pub fn encode_into(
    pipeline: &Pipeline,
    meta: &ArrayMeta,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    if data.len() != meta.nbytes() {
        return Err(Error::Other(format!(
            "chunk of {meta} needs {} bytes, got {}",
            meta.nbytes(),
            data.len()
        )));
    }
    let spec = pipeline.stored_spec();
    out.clear();
    write_header(meta, spec, false, &[0], out)?;
    let body = out.len();
    let fits = match pipeline.encode_into(data, out) {
        Ok(()) => true,
        // The graph cannot hold this chunk (zfp's fixed rate and a NaN): keep it exactly, in
        // our own format, rather than fail and let HDF5 store it unfiltered.
        Err(Error::Unrepresentable { .. }) => false,
        Err(e) => return Err(e),
    };
    let payload = out.len() - body;
    if !fits || payload >= data.len() {
        out.clear();
        write_header(meta, spec, true, &[data.len()], out)?;
        out.extend_from_slice(data);
    } else {
        // Patch the one section length, written as a placeholder.
        out[body - 8..body].copy_from_slice(&(payload as u64).to_le_bytes());
    }
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Append everything up to the sections: magic, version, flags, dtype, shape, spec, lengths.
fn write_header(
    meta: &ArrayMeta,
    spec: &str,
    raw: bool,
    lens: &[usize],
    out: &mut Vec<u8>,
) -> Result<()> {
    if spec.len() > u16::MAX as usize {
        return Err(Error::Other("spec longer than 65535 bytes".into()));
    }
    if meta.rank() == 0 || meta.rank() > 8 || lens.is_empty() || lens.len() > 16 {
        return Err(Error::Other(format!(
            "cannot store {meta} with {} sections",
            lens.len()
        )));
    }
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(if raw { FLAG_RAW } else { 0 });
    out.push(meta.dtype.code());
    out.push(meta.rank() as u8);
    for &d in &meta.shape {
        out.extend_from_slice(&(d as u64).to_le_bytes());
    }
    out.extend_from_slice(&(spec.len() as u16).to_le_bytes());
    out.extend_from_slice(spec.as_bytes());
    out.push(lens.len() as u8);
    for &l in lens {
        out.extend_from_slice(&(l as u64).to_le_bytes());
    }
    Ok(())
}

/// Write a container from its parts (`h.version` must be this build's): what tests and fuzz
/// seeds use to build chunks with a chosen header, such as a forged spec or shape.
pub fn assemble(h: &Header<'_>) -> Result<Vec<u8>> {
    let lens: Vec<usize> = h.sections.iter().map(|s| s.len()).collect();
    let mut out = vec![];
    write_header(&h.meta, h.spec, h.raw, &lens, &mut out)?;
    for s in &h.sections {
        out.extend_from_slice(s);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// True when `bytes` start with the container magic (format detection from the bytes themselves).
pub fn is_container(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parse and checksum-verify a container without decoding its payload.
pub fn read_header(bytes: &[u8]) -> Result<Header<'_>> {
    let (body, crc) = split_checksum(bytes)?;
    if crc32c::crc32c(body) != crc {
        return Err(Error::corrupt(
            "container",
            "checksum mismatch: the chunk was corrupted after it was written",
        ));
    }
    parse_body(body)
}

/// Parse a container's header without verifying its checksum: for a quick look (which graph
/// wrote a chunk) before the chunk is opened with [`read_header`], which checks it. Nothing
/// read here may be decoded: the checksum of a 4 MB chunk is a tenth of the time its
/// compressed-domain reduction takes, not to be paid twice.
pub fn peek_header(bytes: &[u8]) -> Result<Header<'_>> {
    parse_body(split_checksum(bytes)?.0)
}

/// The body of a container and the checksum stored after it.
fn split_checksum(bytes: &[u8]) -> Result<(&[u8], u32)> {
    let bad = |m: &str| Error::corrupt("container", m.to_string());
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        return Err(bad("no RBIN magic: this chunk was not written by roibin"));
    }
    if bytes.len() < 13 {
        return Err(bad("shorter than the smallest header"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    Ok((body, u32::from_le_bytes(crc.try_into().expect("4 bytes"))))
}

/// The header and sections of a container body (its checksum cut off).
fn parse_body(body: &[u8]) -> Result<Header<'_>> {
    let bad = |m: &str| Error::corrupt("container", m.to_string());
    let mut r = Reader::new(body, "container");
    r.take(4)?;
    let version = r.u8()?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(bad(&format!(
            "format version {version} is newer than this build reads ({FORMAT_VERSION}); upgrade roibin"
        )));
    }
    let flags = r.u8()?;
    let dtype = DType::from_code(r.u8()? as u32).map_err(|e| bad(&e.to_string()))?;
    let rank = r.u8()? as usize;
    if rank == 0 || rank > 8 {
        return Err(bad(&format!("rank {rank}")));
    }
    let mut shape = Vec::with_capacity(rank);
    let mut n: usize = dtype.size();
    for _ in 0..rank {
        let d = usize::try_from(r.u64()?).map_err(|_| bad("dimension overflows"))?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_CHUNK_BYTES)
            .ok_or_else(|| bad("chunk too large"))?;
        shape.push(d);
    }
    let spec_len = r.u16()? as usize;
    let spec = std::str::from_utf8(r.take(spec_len)?).map_err(|_| bad("spec is not UTF-8"))?;
    let count = r.u8()? as usize;
    if count == 0 || count > 16 {
        return Err(bad(&format!("{count} sections")));
    }
    let lens: Vec<u64> = (0..count).map(|_| r.u64()).collect::<Result<_>>()?;
    let mut sections = Vec::with_capacity(count);
    for len in lens {
        let len = usize::try_from(len).map_err(|_| bad("section length overflows"))?;
        sections.push(r.take(len)?);
    }
    if !r.is_empty() {
        return Err(bad("trailing bytes after the last section"));
    }
    Ok(Header {
        version,
        raw: flags & FLAG_RAW != 0,
        meta: ArrayMeta { dtype, shape },
        spec,
        sections,
    })
}

/// Decode a container: returns the array meta and its bytes.
pub fn decode(bytes: &[u8]) -> Result<(ArrayMeta, Vec<u8>)> {
    let h = read_header(bytes)?;
    let data = decode_header(&h)?;
    Ok((h.meta, data))
}

/// Decode the payload of an already parsed header.
pub fn decode_header(h: &Header<'_>) -> Result<Vec<u8>> {
    let mut out = vec![0u8; h.meta.nbytes()];
    decode_header_into(h, &mut out)?;
    Ok(out)
}

/// Decode the payload of a parsed header into `dst` (exactly `h.meta.nbytes()` long).
pub fn decode_header_into(h: &Header<'_>, dst: &mut [u8]) -> Result<()> {
    if dst.len() != h.meta.nbytes() {
        return Err(Error::Other(format!(
            "buffer of {} bytes for a chunk of {}",
            dst.len(),
            h.meta
        )));
    }
    if h.raw {
        if h.sections.len() != 1 || h.sections[0].len() != h.meta.nbytes() {
            return Err(Error::corrupt(
                "container",
                "raw payload size does not match the shape",
            ));
        }
        dst.copy_from_slice(h.sections[0]);
        return Ok(());
    }
    decoder(h.spec, &h.meta)?.decode_into(h.sections[0], dst)
}

/// Pipelines for decoding, by (spec, chunk meta): chunks of a dataset share one, so building
/// it (parsing, option checks) happens once, not per chunk. Built with
/// [`Pipeline::decoder`]: nothing but the chunk's bytes is read.
fn decoder(spec: &str, meta: &ArrayMeta) -> Result<std::sync::Arc<Pipeline>> {
    type Cache = Vec<(String, ArrayMeta, std::sync::Arc<Pipeline>)>;
    static CACHE: std::sync::Mutex<Cache> = std::sync::Mutex::new(Vec::new());
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = c.iter().position(|(s, m, _)| s == spec && m == meta) {
        let hit = c.remove(k);
        let p = hit.2.clone();
        c.insert(0, hit);
        return Ok(p);
    }
    let graph: Graph = spec.parse()?;
    let p = std::sync::Arc::new(Pipeline::decoder(&graph, &DataKind::Array(meta.clone()))?);
    c.insert(0, (spec.to_string(), meta.clone(), p.clone()));
    c.truncate(8);
    Ok(p)
}
