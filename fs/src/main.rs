//! The `roibin-fs` binary: argument parsing only; the work is in the library.

use clap::{CommandFactory, Parser, Subcommand};
use roibin_fs::run::{self, MountOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "roibin-fs",
    version,
    about = "A read-only FUSE cache in front of a slow facility file server",
    after_help = "Examples:
  roibin-fs mount http://fileserver:8080/data /mnt/data --cache-dir /ssd/roibin-cache --cache-size 200G
  roibin-fs mount http://fileserver:8080/data /mnt/data --cache-dir /ssd/c --cache-size 50G \\
      --upstream 'http://proxyA:3128|http://proxyB:3128' --immutable
  roibin-fs mount /nfs/beamline /mnt/data --cache-dir /ssd/c --cache-size 50G
  roibin-fs status --cache-dir /ssd/roibin-cache
  fusermount3 -u /mnt/data          (or Ctrl-C / SIGTERM: a clean unmount)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount ORIGIN (an http:// URL answering range requests, or a directory) at MOUNTPOINT
    /// and serve until unmounted.
    Mount(MountOptions),
    /// What a cache directory holds (blocks, bytes, files; the last mount's counters).
    Status {
        #[arg(long)]
        cache_dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Evict least recently used blocks (the cache must not be mounted).
    Evict {
        #[arg(long)]
        cache_dir: PathBuf,
        /// Evict down to this size (default: everything).
        #[arg(long, value_parser = roibin_fs::parse_size, default_value = "0")]
        to: u64,
    },
    /// Read every block and check its header and CRC-32C; bad blocks are deleted.
    Verify {
        #[arg(long)]
        cache_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `roibin-fs completions bash > /etc/bash_completion.d/roibin-fs`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `roibin-fs man > /usr/local/share/man/man1/roibin-fs.1`
    Man,
}

fn main() -> ExitCode {
    match run_command(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("roibin-fs: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Mount(options) => run::mount(options)?,
        Command::Status { cache_dir, json } => {
            let s = run::status(&cache_dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "{}: {} blocks, {:.1} MiB on disk, {} files{}",
                    cache_dir.display(),
                    s["blocks"],
                    s["bytes"].as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64,
                    s["files"].as_array().map_or(0, Vec::len),
                    if s["mounted"] == true {
                        " (mounted)"
                    } else {
                        ""
                    }
                );
                if s["unreadable_blocks"].as_u64() != Some(0) {
                    println!(
                        "  {} unreadable block files (dropped at the next mount)",
                        s["unreadable_blocks"]
                    );
                }
                if let Some(c) = s["last_mount_counters"].as_object() {
                    println!(
                        "  last mount: {} RAM hits, {} disk hits, {} origin GETs ({:.1} MiB), {} corrupt blocks refetched, {} origin errors",
                        c["ram_hits"], c["disk_hits"], c["origin_gets"],
                        c["origin_bytes"].as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64,
                        c["corrupt_blocks"], c["origin_errors"]
                    );
                }
            }
        }
        Command::Evict { cache_dir, to } => {
            let (n, left) = run::evict(&cache_dir, to)?;
            println!(
                "evicted {n} blocks; {:.1} MiB left",
                left as f64 / (1u64 << 20) as f64
            );
        }
        Command::Verify { cache_dir, json } => {
            let (checked, bad) = run::verify(&cache_dir)?;
            if json {
                println!("{}", serde_json::json!({"checked": checked, "bad": bad}));
            } else {
                println!("checked {checked} blocks, {} bad (deleted)", bad.len());
                for b in &bad {
                    println!("  {b}");
                }
            }
            if !bad.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "roibin-fs",
                &mut std::io::stdout(),
            );
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?,
    }
    Ok(ExitCode::SUCCESS)
}
