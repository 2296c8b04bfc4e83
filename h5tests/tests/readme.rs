//! The README's examples run as written: the h5py block (with `frames` made up here), the
//! h5repack/h5dump block (with the plugin folder of this build), the CLI block, and the
//! cd_values it quotes are what `roibin cdvalues strong` prints.

use roibin_h5tests::*;

/// The body of the first fenced block of `lang` after `heading` in the README.
fn block(heading: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading}"))..];
    let start = section.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
    let len = section[start..].find("```").unwrap();
    section[start..start + len].to_string()
}

#[test]
fn the_readme_examples_run_as_written() {
    let dir = scratch("readme");
    // h5py: the block as printed, after a line that makes `frames`.
    let code = format!(
        "import numpy as np\nframes = np.random.default_rng(0).poisson(0.3, (2, 2167, 2070)).astype('u2')\n{}\n\
with h5py.File('frames.h5') as f:\n    for name in ('data', 'strong'):\n        assert (f[name][()] == frames).all(), name\n        assert f[name].id.get_storage_size() < frames.nbytes / 4, name\nprint('readme h5py ok')\n",
        block("## Three ways to use it", "python")
    );
    let mut c = client("python3");
    c.arg("-c").arg(&code).current_dir(&dir);
    assert!(stdout(&ok(c)).contains("readme h5py ok"));

    // The cd_values the README quotes are the ones the tool prints.
    let cd = stdout(&ok(roibin(&["cdvalues", "strong"])));
    let python_block = block("## Three ways to use it", "python");
    // "compression=443, compression_opts=(1380078849, 6, 1869771891, 26478,)" → the numbers.
    let line = cd
        .lines()
        .find(|l| l.contains("compression_opts="))
        .unwrap();
    let numbers = line
        .split("compression_opts=(")
        .nth(1)
        .unwrap()
        .trim_end_matches(",)");
    assert!(
        python_block.contains(numbers),
        "README's tuple is stale: {cd}"
    );
    let repack = cd.lines().find(|l| l.contains("UD=")).unwrap();
    let ud = repack
        .split_whitespace()
        .find(|w| w.starts_with("UD="))
        .unwrap();
    assert!(
        block("**h5repack, h5dump and writers**", "sh").contains(ud),
        "README's UD= is stale: {cd}"
    );

    // h5repack/h5dump: every line, with this build's plugin folder, on a plain copy.
    let mut c = client("python3");
    c.arg("-c")
        .arg("import h5py\nwith h5py.File('frames.h5') as f, h5py.File('plain.h5', 'w') as g:\n    g.create_dataset('data', data=f['data'][()], chunks=(1, 2167, 2070))\n")
        .current_dir(&dir);
    ok(c);
    let sh = block("**h5repack, h5dump and writers**", "sh")
        .replace("$PWD/target/release", plugin_dir().to_str().unwrap());
    let mut c = std::process::Command::new("bash");
    c.arg("-euc").arg(&sh).current_dir(&dir);
    let out = ok(c);
    assert!(
        stdout(&out).contains("443"),
        "h5dump does not show filter 443"
    );

    // The CLI block, with `in.h5:/entry/data/data` made by `roibin synth`.
    ok(roibin(&[
        "synth",
        dir.join("run.h5").to_str().unwrap(),
        "--frames",
        "2",
    ]));
    let cli = block("**The CLI**", "sh")
        .replace("in.h5", "run.h5")
        .replace("roibin ", &format!("{} ", roibin_bin().display()));
    let mut c = std::process::Command::new("bash");
    c.arg("-euc").arg(&cli).current_dir(&dir);
    let text = stdout(&ok(c));
    assert!(text.contains("strong"), "{text}");
}
