//! `roibin-fs`: a read-only FUSE cache in front of a slow facility file server.
//!
//! Analysis nodes read detector files through the mount; the bytes come from a RAM tier, then
//! an on-disk block cache (checksummed blocks, a hard size cap, warm restart), then the origin:
//! an HTTP server answering range requests (directly or through a proxy tier such as the nginx
//! configuration in `deploy/`) or a slow local/NFS path.
//!
//! - [`origin`]: HTTP and path origins, every call bounded by a timeout.
//! - [`cache`]: the RAM and disk tiers and the block file format.
//! - [`store`]: tier lookup and single-flight fetches.
//! - [`prefetch`]: sequential readahead and HDF5 chunk-index hints ([`hdf5_hint`]).
//! - [`meta`]: revalidation of file versions and listings.
//! - [`mount`]: the FUSE filesystem.
//! - [`run`]: mounting, and the `status` / `evict` / `verify` commands on a cache directory.

pub mod cache;
pub mod hdf5_hint;
pub mod meta;
pub mod mount;
pub mod origin;
pub mod prefetch;
pub mod run;
pub mod store;

/// Parses a size with an optional binary unit: `4096`, `64K`, `1M`, `200G`, `1T` (also `MiB`,
/// `GB`… read as powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}': expected a size such as 512M or 200G"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("'{text}': unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}': too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse() {
        use super::parse_size;
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("200G"), Ok(200 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
