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
    /// No progress bars, summaries or hints (results, --json and errors still print); also ROIBIN_QUIET=1
    #[arg(short, long, global = true, env = "ROIBIN_QUIET", value_parser = clap::builder::FalseyValueParser::new())]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every registered codec with its options and docs
    #[command(after_help = "Examples:\n  roibin list\n  roibin list --json | jq '.[].name'")]
    List(cmd::list::Args),
    /// Print the h5py `compression_opts` tuple and the h5repack `UD=` string for a spec
    #[command(
        after_help = "Examples:\n  roibin cdvalues strong\n  roibin cdvalues 'sz(abs=0.5)'\n  roibin cdvalues @jf.spec          (a long spec kept in a file)"
    )]
    Cdvalues(cmd::cdvalues::Args),
    /// Compress an HDF5 dataset into another with the roibin filter
    #[command(
        after_help = "Examples:\n  roibin compress run.h5:/entry/data/data run-strong.h5 --spec strong\n  roibin compress frames.h5:/data lossy.h5 --spec 'sz(abs=0.5)' --tasks 4\n  roibin compress cxi.h5:/entry_1/data_1/data out.h5 --spec 'roibin(auto, background=bin(2,2)|sz(abs=45))'\n  mpirun -n 4 --bind-to none roibin compress big.h5:/data out.h5 --spec fast"
    )]
    Compress(cmd::compress::CompressArgs),
    /// Decompress a dataset into a plain (unfiltered) chunked dataset
    #[command(after_help = "Examples:\n  roibin decompress packed.h5:/entry/data/data plain.h5")]
    Decompress(cmd::compress::DecompressArgs),
    /// Run a peak finder on a dataset's frames and print the peaks (compare finders)
    #[command(
        after_help = "Examples:\n  roibin peaks eiger.h5:/entry/data/data --finder dispersion --frames 4     (counts: DIALS's test)\n  roibin peaks frame.h5:/data --finder 'pf8(adc=5)' --json"
    )]
    Peaks(cmd::peaks::Args),
    /// Show datasets, their filters, specs and per-chunk ratios
    #[command(
        after_help = "Examples:\n  roibin info packed.h5\n  roibin info packed.h5:/entry/data/data"
    )]
    Info(cmd::info::Args),
    /// Write synthetic detector frames (Eiger-4M-like counts or calibrated float32)
    #[command(
        after_help = "Examples:\n  roibin synth frames.h5 --dtype u16 --frames 16\n  roibin synth jf.h5 --layout jungfrau --frames 8\n  roibin synth scan.h5 --layout stxm --scan 32x32 --frame 256x256 --bslz4"
    )]
    Synth(cmd::synth::Args),
    /// Science check of a lossy graph on detector frames: peaks, intensities, background, speed
    #[command(
        after_help = "Examples:\n  roibin bench --science\n  roibin bench --science jf.h5 --spec 'roibin(peaks=pf8,background=bin(4,4)|sz(abs=90))'"
    )]
    Bench(cmd::bench::Args),
    /// Search tasks, stage threads and frames per chunk for a spec; write a tuning file
    #[command(
        after_help = "Examples:\n  roibin autotune frames.h5:/data --spec strong -o strong.tuning\n  roibin autotune --science jf.h5:/entry_1/data_1/data --bound 90"
    )]
    Autotune(cmd::autotune::Args),
    /// Reduce a raster scan to a map (STXM: brightfield, polarroi, radial, gridroi, hits, bragg)
    #[command(
        after_help = "Examples:\n  roibin stxm scan.h5 --scan 32x32 --signal comh -o comh.png\n  roibin stxm scan.h5 --scan 32x32 --algo radial --radial '128,128;0,100;50' -o radial.h5\n  roibin stxm --list"
    )]
    Stxm(Box<cmd::stxm::Args>),
    /// Serve dada's HTTP API (show, multi, stxm) and a web page over a data folder
    #[command(
        after_help = "Examples:\n  roibin serve --root /data/beamtime\n  roibin serve --root /data --bind 0.0.0.0:8080 --token-file ~/.roibin-token"
    )]
    Serve(cmd::serve::Args),
    /// The main job on built-in data: synthesise frames, compress them with several graphs, verify, report
    #[command(after_help = "Examples:\n  roibin demo\n  roibin demo --out /tmp/demo --frames 2")]
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
    roibin_tools::ui::set_quiet(cli.quiet);
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
