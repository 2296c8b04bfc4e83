//! With `bundle-plugin` (pip, maturin): build the HDF5 plugin `libh5roibin.so` and place it in
//! the Python package (`roibin/plugin/`), so the wheel carries it for h5repack, h5dump and C
//! writers (`roibin.PLUGIN_PATH`).
//!
//! A cdylib of another crate cannot be a dependency, so this runs a second cargo on the
//! filter crate, in its own target folder (the outer build holds the lock on the first).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BUNDLE_PLUGIN").is_none() {
        return;
    }
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = here
        .parent()
        .expect("python/ sits in the workspace")
        .to_path_buf();
    for dir in ["filter", "registry", "compressors"] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(dir).join("src").display()
        );
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let target = out.join("plugin-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "roibin-filter", "--lib"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The outer build's settings for this crate, not for the plugin.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        // A plugin without debug info: a tenth of the size in the wheel.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .status()
        .expect("run cargo to build the HDF5 plugin");
    assert!(status.success(), "building libh5roibin.so failed");
    let dest = here.join("roibin").join("plugin");
    std::fs::create_dir_all(&dest).expect("create roibin/plugin");
    // Copy then rename: a half-written plugin never sits where HDF5 would load it.
    let tmp = dest.join(".libh5roibin.so.tmp");
    std::fs::copy(target.join("release").join("libh5roibin.so"), &tmp)
        .expect("copy libh5roibin.so");
    std::fs::rename(&tmp, dest.join("libh5roibin.so")).expect("place libh5roibin.so");
}
