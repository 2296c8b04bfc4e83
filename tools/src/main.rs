//! `roibin`: the command line. Thin: every command is a small module over the library crates.

use clap::{CommandFactory, Parser, Subcommand};
use roibin_tools::cmd;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "roibin",
    version,
    about = "Composable compression for X-ray detector data, as an HDF5 filter and a toolkit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every registered codec with its options and docs
    List(cmd::list::Args),
    /// Print the h5py `compression_opts` tuple and the h5repack `UD=` string for a spec
    Cdvalues(cmd::cdvalues::Args),
    /// Compress an HDF5 dataset into another with the roibin filter
    Compress(cmd::compress::CompressArgs),
    /// Decompress a dataset into a plain (unfiltered) chunked dataset
    Decompress(cmd::compress::DecompressArgs),
    /// Run a peak finder on a dataset's frames and print the peaks (compare finders)
    Peaks(cmd::peaks::Args),
    /// Show datasets, their filters, specs and per-chunk ratios
    Info(cmd::info::Args),
    /// Write synthetic detector frames (Eiger-4M-like counts or calibrated float32)
    Synth(cmd::synth::Args),
    /// Science check of a lossy graph on detector frames: peaks, intensities, background, speed
    Bench(cmd::bench::Args),
    /// Search tasks, stage threads and frames per chunk for a spec; write a tuning file
    Autotune(cmd::autotune::Args),
    /// Reduce a raster scan to a map (STXM: brightfield, polarroi, radial, gridroi, hits, bragg)
    Stxm(Box<cmd::stxm::Args>),
    /// Serve dada's HTTP API (show, multi, stxm) and a web page over a data folder
    Serve(cmd::serve::Args),
    /// The main job on built-in data: synthesise frames, compress them with several graphs, verify, report
    Demo(cmd::demo::Args),
    /// Print a shell completion script: `roibin completions bash > /etc/bash_completion.d/roibin`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Write man pages (roibin.1 and one per command) into a folder: `roibin man --out /usr/local/share/man/man1`
    Man {
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// `roibin man`: one page for the tool and one per command (`roibin-compress.1`, …).
fn write_man_pages(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let roibin = Cli::command();
    let mut pages = vec![("roibin".to_string(), roibin.clone())];
    for sub in roibin.get_subcommands() {
        let name = format!("roibin-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, command) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        std::fs::write(out.join(format!("{name}.1")), page)?;
    }
    println!("man pages written to {}", out.display());
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if matches!(
        cli.cmd,
        Cmd::List(_) | Cmd::Cdvalues(_) | Cmd::Info(_) | Cmd::Peaks(_) | Cmd::Completions { .. }
    ) {
        // These print listings: piped into `head` and closed early, they end quietly as other
        // command line tools do, instead of a panic on a failed print. (Not the server nor
        // MPI jobs: a closed socket must stay an error there, not a signal.)
        // SAFETY: restoring a signal's default disposition at start, before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let r = match cli.cmd {
        Cmd::List(a) => cmd::list::run(a),
        Cmd::Cdvalues(a) => cmd::cdvalues::run(a),
        Cmd::Compress(a) => cmd::compress::compress(a),
        Cmd::Decompress(a) => cmd::compress::decompress(a),
        Cmd::Info(a) => cmd::info::run(a),
        Cmd::Peaks(a) => cmd::peaks::run(a),
        Cmd::Synth(a) => cmd::synth::run(a),
        Cmd::Demo(a) => cmd::demo::run(a),
        Cmd::Bench(a) => cmd::bench::run(a),
        Cmd::Autotune(a) => cmd::autotune::run(a),
        Cmd::Stxm(a) => cmd::stxm::run(*a),
        Cmd::Serve(a) => cmd::serve::run(a),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "roibin", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man { out } => write_man_pages(&out),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
