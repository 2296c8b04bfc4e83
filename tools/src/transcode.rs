//! The chunk loop shared by `compress` and `decompress`: read chunks (decoding roibin chunks
//! ourselves, in parallel), transform them in parallel ("tasks"), and write them with direct
//! chunk writes, one HDF5 call at a time.

use crate::grid::{pad, Grid};
use crate::h5io::Dataset;
use crate::world::World;
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use roibin_compressors::spare::Spare;
use roibin_registry::{container, threads, ArrayMeta, Pipeline};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one run moved and where the time went.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub chunks: usize,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub read: Duration,
    /// Of `transform`: the tasks' own reads of unfiltered input (summed over tasks).
    pub task_read: Duration,
    pub transform: Duration,
    pub write: Duration,
    pub total: Duration,
    /// Time inside each codec stage, summed over chunks and threads, and its calls.
    pub stages: Vec<(&'static str, Duration, u64)>,
}

impl Report {
    /// The summary as JSON (`--json`): what moved, the ratio, the speed and the time per stage.
    pub fn to_json(&self, input: &str, output: &str, spec: &str) -> serde_json::Value {
        let secs = self.total.as_secs_f64().max(1e-9);
        serde_json::json!({
            "input": input,
            "output": output,
            "spec": spec,
            "chunks": self.chunks,
            "raw_bytes": self.raw_bytes,
            "stored_bytes": self.stored_bytes,
            "ratio": self.raw_bytes as f64 / self.stored_bytes.max(1) as f64,
            "seconds": self.total.as_secs_f64(),
            "mb_per_s": self.raw_bytes as f64 / 1e6 / secs,
            "read_s": self.read.as_secs_f64(),
            "task_read_s": self.task_read.as_secs_f64(),
            "transform_s": self.transform.as_secs_f64(),
            "write_s": self.write.as_secs_f64(),
            "stages": self.stages.iter().map(|(name, t, calls)| serde_json::json!({
                "name": name, "seconds": t.as_secs_f64(), "calls": calls,
            })).collect::<Vec<_>>(),
        })
    }

    /// Print the final summary line block.
    pub fn print(&self, verb: &str) {
        if crate::ui::quiet() {
            return;
        }
        let mb = self.raw_bytes as f64 / 1e6;
        let secs = self.total.as_secs_f64().max(1e-9);
        let work = if verb == "compressed" {
            "encode"
        } else {
            "decode"
        };
        eprintln!(
            "{verb} {} chunks, {:.1} MB → {:.1} MB (ratio {:.2}) in {:.2} s: {:.0} MB/s",
            self.chunks,
            mb,
            self.stored_bytes as f64 / 1e6,
            self.raw_bytes as f64 / self.stored_bytes.max(1) as f64,
            secs,
            mb / secs,
        );
        let by_tasks = if self.task_read.is_zero() {
            String::new()
        } else {
            format!(
                ", the tasks' own reads {:.2} s summed over tasks",
                self.task_read.as_secs_f64()
            )
        };
        eprintln!(
            "  time per stage: read {:.2} s, {work} {:.2} s (parallel, overlaps reading{by_tasks}), write {:.2} s",
            self.read.as_secs_f64(),
            self.transform.as_secs_f64(),
            self.write.as_secs_f64(),
        );
        if !self.stages.is_empty() {
            let list: Vec<String> = self
                .stages
                .iter()
                .map(|(name, t, _)| format!("{name} {:.2} s", t.as_secs_f64()))
                .collect();
            eprintln!(
                "  inside {work} (summed over threads; a stage's nested stages count in it too): {}",
                list.join(", ")
            );
        }
    }
}

/// What to do with each chunk.
pub enum Transform<'a> {
    /// Encode with this pipeline (compress).
    Encode(&'a Pipeline),
    /// Store decoded bytes (decompress).
    Plain,
}

/// The input's file, for the tasks' own reads of unfiltered chunks.
struct RawInput {
    file: std::fs::File,
    /// Where HDF5 addresses start in it (the user block's size).
    base: u64,
    /// Time spent reading, summed over tasks.
    nanos: AtomicU64,
    /// Chunk buffers handed back after their chunk is encoded: a fresh 16 MB buffer per frame
    /// was zero-filled (and its pages faulted in) only to be overwritten by the read, one
    /// more pass over memory per frame.
    spare: Spare<u8>,
}

enum Source {
    Decoded(Vec<u8>),
    Encoded(Vec<u8>),
    /// Bytes HDF5 would return unchanged, at this position of the input's file: read by the
    /// task that transforms them, so reading runs on every task instead of this thread.
    Raw {
        pos: u64,
        len: usize,
    },
}

pub fn progress(len: usize, what: &str) -> ProgressBar {
    let pb = crate::ui::bar(
        len,
        "{msg} [{bar:30}] {pos}/{len} chunks, {per_sec}, eta {eta}",
    );
    pb.set_message(what.to_string());
    pb
}

/// Most chunks encoded at once, per core: more only holds more chunks in memory (the pool
/// itself never has more threads than cores).
pub const MAX_TASKS_PER_CORE: usize = 2;

/// `--tasks` as run: 0 is one per core; larger values are capped at
/// [`MAX_TASKS_PER_CORE`] × cores (each task holds two chunks in memory).
pub fn tasks_for(tasks: usize) -> usize {
    let cores = roibin_registry::threads::cores();
    let max = MAX_TASKS_PER_CORE * cores;
    match tasks {
        0 => cores,
        t if t > max => {
            eprintln!("--tasks {t}: capped at {max} ({MAX_TASKS_PER_CORE} per core)");
            max
        }
        t => t,
    }
}

/// Copy every chunk of `src` into `dst` (same shape and chunking), transformed.
///
/// Over several ranks (`world`), each round gives every rank `2 × tasks` consecutive chunks;
/// rank 0 (the only one with a `dst`) writes its own and then each rank's, in chunk order, so
/// the file is the one a single process writes.
pub fn run(
    src: &Dataset,
    dst: Option<&Dataset>,
    grid: &Grid,
    how: Transform<'_>,
    tasks: usize,
    peaks: Option<&[Vec<[f32; 2]>]>,
    world: &World,
) -> Result<Report> {
    let start = Instant::now();
    roibin_registry::profile::enable();
    let elem = src.dtype.size();
    let chunk_meta = ArrayMeta::new(src.dtype, grid.chunk.clone());
    let direct = src.is_roibin_only() && src.chunk.as_deref() == Some(&grid.chunk[..]);
    let tasks = tasks_for(tasks);
    // Unfiltered input in the native type is read by the tasks themselves (positioned reads
    // of the file, outside HDF5), where HDF5's layout allows: one reading thread capped
    // `--tasks 16` at a third of its cores.
    let raw_file = match (direct, src.filters.is_empty(), src.storage_file()) {
        (false, true, Ok((path, base))) => std::fs::File::open(&path).ok().map(|file| RawInput {
            file,
            base,
            nanos: AtomicU64::new(0),
            spare: Spare::default(),
        }),
        _ => None,
    };
    // Chunks per round. Rounds run two at a time and the second is spawned right after the
    // first, so they share the pool and finish together: the workers idle through each pair's
    // tail until the next pair is read (device perf timeline: a third of 16 cores idle). Raw
    // input holds no bytes until a task reads them, so its rounds can be long (fewer tails);
    // chunks read through HDF5 are held in memory, so theirs stay short.
    let batch = if raw_file.is_some() {
        tasks * 8
    } else {
        tasks * 2
    };
    let mut report = Report {
        chunks: grid.len(),
        ..Default::default()
    };
    let pb = if world.is_root() {
        progress(
            grid.len(),
            match how {
                Transform::Encode(_) => "compress",
                Transform::Plain => "decompress",
            },
        )
    } else {
        ProgressBar::hidden()
    };
    let raw = |i: usize| (grid.extent(&grid.offset(i)).iter().product::<usize>() * elem) as u64;
    // A round is read (HDF5, this thread) while the previous one encodes (the pool, in a
    // scoped thread), then the previous one is written (HDF5, this thread): reading overlaps
    // encoding, and HDF5 is only ever called from here.
    let rounds: Vec<usize> = (0..grid.len()).step_by(batch * world.size()).collect();
    std::thread::scope(|scope| -> Result<()> {
        let mut in_flight = None;
        for round in rounds.iter().map(Some).chain([None]) {
            let next = match round {
                Some(&round) => {
                    let first = round + world.rank() * batch;
                    let idx: Vec<usize> = (first..(first + batch).min(grid.len())).collect();
                    let t = Instant::now();
                    let mut items = Vec::with_capacity(idx.len());
                    for &i in &idx {
                        let off = grid.offset(i);
                        let ext = grid.extent(&off);
                        let raw_at = match &raw_file {
                            Some(raw) if ext == grid.chunk => {
                                src.raw_range(&off, &ext)?.map(|a| a + raw.base)
                            }
                            _ => None,
                        };
                        items.push(if direct {
                            Source::Encoded(src.read_raw_chunk(&off)?.0)
                        } else if let Some(pos) = raw_at {
                            Source::Raw {
                                pos,
                                len: chunk_meta.nbytes(),
                            }
                        } else {
                            Source::Decoded(pad(src.read_box(&off, &ext)?, &ext, &grid.chunk, elem))
                        });
                    }
                    report.read += t.elapsed();
                    let (how, chunk_meta, raw_file) = (&how, &chunk_meta, &raw_file);
                    let encoding = scope.spawn(move || {
                        let t = Instant::now();
                        let outs = threads::install(tasks, || {
                            items
                                .into_par_iter()
                                .zip(idx.par_iter())
                                // One chunk per job: rayon's default pieces of several chunks
                                // left a round's tail to a few workers.
                                .with_max_len(1)
                                .map(|(item, &i)| {
                                    transform(
                                        item,
                                        i,
                                        grid,
                                        how,
                                        chunk_meta,
                                        peaks,
                                        raw_file.as_ref(),
                                    )
                                })
                                .collect::<Result<Vec<Vec<u8>>>>()
                        });
                        (first, outs, t.elapsed())
                    });
                    Some((round, encoding))
                }
                None => None,
            };
            let Some((round, encoding)) = std::mem::replace(&mut in_flight, next) else {
                continue;
            };
            let (first, outs, dt) = encoding.join().expect("the encoding thread panicked");
            report.transform += dt;
            let outs = outs?;
            let Some(dst) = dst else {
                if !outs.is_empty() {
                    world.send(0, &crate::world::pack(&outs));
                }
                continue;
            };
            let t = Instant::now();
            let mut write = |first: usize, outs: &[Vec<u8>]| -> Result<()> {
                for (k, bytes) in outs.iter().enumerate() {
                    report.raw_bytes += raw(first + k);
                    report.stored_bytes += bytes.len() as u64;
                    dst.write_raw_chunk(&grid.offset(first + k), bytes)?;
                }
                pb.inc(outs.len() as u64);
                Ok(())
            };
            write(first, &outs)?;
            for rank in 1..world.size() {
                let theirs = round + rank * batch;
                if theirs >= grid.len() {
                    break;
                }
                let outs = crate::world::unpack(&world.receive(rank))?;
                write(theirs, &outs)?;
            }
            report.write += t.elapsed();
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    report.total = start.elapsed();
    if let Some(raw) = &raw_file {
        report.task_read = Duration::from_nanos(raw.nanos.load(Ordering::Relaxed));
    }
    report.stages = roibin_registry::profile::take();
    Ok(report)
}

/// Decode (when the source is ours) and transform one chunk.
fn transform(
    item: Source,
    i: usize,
    grid: &Grid,
    how: &Transform<'_>,
    chunk_meta: &ArrayMeta,
    peaks: Option<&[Vec<[f32; 2]>]>,
    raw: Option<&RawInput>,
) -> Result<Vec<u8>> {
    let mut kept = None;
    let data = match item {
        Source::Decoded(d) => d,
        Source::Raw { pos, len } => {
            use std::os::unix::fs::FileExt;
            let raw = raw.context("internal: a raw range without the input file")?;
            kept = Some(&raw.spare);
            let t = Instant::now();
            // A kept buffer is already `len` long (chunks of raw input are full chunks): no
            // fill; the read overwrites every byte.
            let mut buf = raw.spare.take();
            buf.resize(len, 0);
            raw.file.read_exact_at(&mut buf, pos).with_context(|| {
                format!(
                    "cannot read chunk {:?} of the input ({len} bytes at byte {pos})",
                    grid.offset(i)
                )
            })?;
            let nanos = t.elapsed().as_nanos() as u64;
            raw.nanos.fetch_add(nanos, Ordering::Relaxed);
            buf
        }
        Source::Encoded(e) => {
            container::decode(&e)
                .with_context(|| {
                    format!("chunk {:?} of the input does not decode", grid.offset(i))
                })?
                .1
        }
    };
    let encoded = match how {
        Transform::Encode(p) => match peaks {
            // Writer-supplied centres for the chunk's frames (`peaks=given`).
            Some(all) => {
                let off = grid.offset(i);
                let (f0, nf) = if grid.chunk.len() >= 3 {
                    (off[0], grid.chunk[0])
                } else {
                    (0, 1)
                };
                let lists: Vec<Vec<[f32; 2]>> = (f0..f0 + nf)
                    .map(|f| all.get(f).cloned().unwrap_or_default())
                    .collect();
                roibin_compressors::detector::roibin::with_centres(lists, || {
                    container::encode_with(p, chunk_meta, &data)
                })?
            }
            None => container::encode_with(p, chunk_meta, &data)?,
        },
        Transform::Plain => return Ok(data),
    };
    if let Some(spare) = kept {
        spare.give(data);
    }
    Ok(encoded)
}
