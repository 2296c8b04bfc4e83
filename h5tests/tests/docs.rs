//! The docs' examples hold: every spec they quote is one the registry accepts, the output they
//! quote is what the tool prints, the STXM walk-through runs as written, and every command the
//! CLI page lists exists. (README's examples: readme.rs; docs/python.md: pytest's doctest.)

use roibin_h5tests::*;

/// The bodies of the fenced blocks of `file` (relative to the repository).
fn blocks(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let mut out = vec![];
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("```") {
            match cur.take() {
                Some(b) => out.push(b),
                None => cur = Some(String::new()),
            }
        } else if let Some(b) = cur.as_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    out
}

/// The specs of a cheat-sheet block: the first column (before two spaces), split at " · ".
fn cheat_sheet_specs(block: &str) -> Vec<String> {
    block
        .lines()
        .filter_map(|l| l.split("  ").next())
        .flat_map(|col| col.split(" · "))
        .map(|s| s.trim().replace("abs=B", "abs=90"))
        .filter(|s| !s.is_empty())
        .collect()
}

fn accepts(spec: &str, whence: &str) {
    let (code, _, err) = run(roibin(&["cdvalues", spec]));
    assert_eq!(code, Some(0), "{whence}: `{spec}` is refused: {err}");
}

#[test]
fn every_quoted_spec_is_accepted() {
    let readme = blocks("README.md");
    let sheet = readme
        .iter()
        .find(|b| b.starts_with("fast · strong · auto"))
        .expect("README's spec cheat sheet");
    let specs = cheat_sheet_specs(sheet);
    assert!(specs.len() >= 9, "{specs:?}");
    for s in &specs {
        accepts(s, "README cheat sheet");
    }
    for s in cheat_sheet_specs(&blocks("docs/specs.md")[0]) {
        accepts(&s, "docs/specs.md");
    }
    // docs/roibin.md's spec spans lines.
    let full = blocks("docs/roibin.md")[0]
        .split_whitespace()
        .collect::<String>();
    accepts(&full, "docs/roibin.md");
    // A wrong spec is refused, so the checks above can fail.
    let (code, _, _) = run(roibin(&["cdvalues", "sz(abz=1)"]));
    assert_ne!(code, Some(0));
}

#[test]
fn quoted_output_is_what_the_tool_prints() {
    let block = blocks("docs/filter.md")
        .into_iter()
        .find(|b| b.starts_with("$ roibin cdvalues"))
        .expect("docs/filter.md's cdvalues example");
    let (cmd, quoted) = block.split_once('\n').unwrap();
    let spec = cmd
        .trim_start_matches("$ roibin cdvalues ")
        .trim_matches('\'');
    assert_eq!(stdout(&ok(roibin(&["cdvalues", spec]))), quoted);
}

#[test]
fn the_stxm_walk_through_runs_as_written() {
    let dir = scratch("docs-stxm");
    let block = blocks("docs/stxm.md")
        .into_iter()
        .find(|b| b.starts_with("roibin synth scan.h5"))
        .expect("docs/stxm.md's walk-through");
    let shared = root().parent().unwrap().join("shared").join("data");
    let bin = roibin_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for line in block.lines() {
        if line.starts_with("mpirun") {
            continue; // the MPI tests run ranks
        }
        if line.contains("../shared/data") && !shared.exists() {
            eprintln!("skipped (no ../shared/data): {line}");
            continue;
        }
        let line = line.replace("../shared/data", &shared.display().to_string());
        let mut c = client("bash");
        c.args(["-c", &format!("set -e; {line}")])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("XDG_CACHE_HOME", dir.join("cache"));
        let (code, out, err) = run(c);
        assert_eq!(code, Some(0), "`{line}` failed:\n{out}\n{err}");
        ran += 1;
    }
    assert!(ran >= 4, "only {ran} lines ran");
    for out in ["comh.png", "iq.h5"] {
        assert!(dir.join(out).exists(), "{out} was not written");
    }
}

#[test]
fn every_listed_command_exists() {
    let synopsis = &blocks("docs/cli.md")[0];
    let mut seen = 0;
    for line in synopsis.lines() {
        let Some(rest) = line.strip_prefix("roibin ") else {
            continue;
        };
        let cmd = rest.split_whitespace().next().unwrap();
        let (code, _, err) = run(roibin(&[cmd, "--help"]));
        assert_eq!(code, Some(0), "docs/cli.md lists `roibin {cmd}`: {err}");
        seen += 1;
    }
    assert!(seen >= 15, "{seen}");
}
