//! Paths in requests: relative to the root, and never outside it.

use std::path::{Component, Path, PathBuf};

/// Why a path is refused.
#[derive(Debug, PartialEq)]
pub enum PathError {
    /// It would leave the root (`..`, absolute, a symlink pointing out).
    Outside,
    /// Nothing there.
    Missing,
}

/// `rel` (already percent-decoded) resolved below `root` (canonical): every component must be
/// a plain name, and the canonical result (symlinks followed) must still lie below the root.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let rel = rel.trim_start_matches("./");
    if rel.contains('\0') || rel.starts_with('/') || rel.starts_with('\\') {
        return Err(PathError::Outside);
    }
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(PathError::Outside);
    }
    let full = std::fs::canonicalize(root.join(p)).map_err(|_| PathError::Missing)?;
    if !full.starts_with(root) {
        return Err(PathError::Outside);
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_leaves_the_root() {
        let base = std::env::temp_dir().join(format!("roibin-paths-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.h5"), b"x").unwrap();
        std::fs::write(base.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("link")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        assert!(resolve(&root, "sub/a.h5").is_ok());
        assert!(resolve(&root, "./sub/a.h5").is_ok());
        for bad in [
            "../secret",
            "sub/../../secret",
            "/etc/passwd",
            "link",
            "sub/..\0",
        ] {
            assert_eq!(resolve(&root, bad).err(), Some(PathError::Outside), "{bad}");
        }
        assert_eq!(resolve(&root, "nope.h5").err(), Some(PathError::Missing));
        let _ = std::fs::remove_dir_all(&base);
    }
}
