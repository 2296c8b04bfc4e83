//! ROIBIN stages on planted peaks: windows bit-exact, layouts, dtypes, bad inputs.

use roibin_compressors::detector::peaks::{write_npy, NpyData, PeakList};
use roibin_compressors::detector::roibin::{frames, with_centres};
use roibin_compressors::{decode_chunk, encode_chunk};
use roibin_registry::{ArrayMeta, DType, DataKind, Pipeline};

mod common;
use common::{bytes, floats, frame};

/// Every pixel within `r` of a centre (same panel) must come back bit-exact.
fn assert_windows_exact(
    orig: &[f32],
    back: &[f32],
    centres: &[(usize, usize)],
    r: i64,
    rows: usize,
    cols: usize,
) {
    for &(y, x) in centres {
        let panel = y / rows;
        for dy in -r..=r {
            for dx in -r..=r {
                let (yy, xx) = (y as i64 + dy, x as i64 + dx);
                if yy < (panel * rows) as i64
                    || yy >= ((panel + 1) * rows) as i64
                    || xx < 0
                    || xx >= cols as i64
                {
                    continue;
                }
                let i = yy as usize * cols + xx as usize;
                assert_eq!(
                    orig[i].to_bits(),
                    back[i].to_bits(),
                    "window pixel ({yy},{xx}) changed"
                );
            }
        }
    }
}

#[test]
fn pf8_and_pfv3_find_planted_peaks_per_panel() {
    let (v, centres) = frame(2, 1);
    for spec in ["pf8", "pfv3"] {
        let p = Pipeline::from_spec(
            spec,
            &DataKind::Array(ArrayMeta::new(DType::F32, vec![2, 64, 96])),
        )
        .unwrap();
        let list = PeakList::read(&p.encode(&bytes(&v)).unwrap()).unwrap();
        assert_eq!(list.found, centres.len(), "{spec}: {list:?}");
        for &(y, x) in &centres {
            assert!(
                list.peaks
                    .iter()
                    .any(|p| (p.y - y as f32).abs() < 0.5 && (p.x - x as f32).abs() < 0.5),
                "{spec} missed ({y},{x})"
            );
        }
        let err = p.decode(&[0; 8]).unwrap_err().to_string();
        assert!(err.contains("peak list"), "{err}");
    }
}

#[test]
fn roibin_keeps_windows_exact_on_every_layout() {
    let (v, centres) = frame(2, 2);
    let (v2, c2) = frame(2, 3);
    let one = bytes(&v);
    let two: Vec<u8> = [bytes(&v), bytes(&v2)].concat();
    let c_two: Vec<(usize, usize)> = centres
        .iter()
        .copied()
        .chain(c2.iter().map(|&(y, x)| (y + 128, x)))
        .collect();
    let cases: Vec<(Vec<usize>, &[u8], &str)> = vec![
        (vec![128, 96], &one, "roibin(panel_rows=64)"),
        (
            vec![2, 128, 96],
            &two,
            "roibin(panel_rows=64,background=bin(2,2)|sz(abs=90))",
        ),
        (
            vec![2, 2, 64, 96],
            &two,
            "roibin(background=bin(2,2)|zfp(accuracy=20))",
        ),
        (
            vec![2, 2, 64, 96],
            &two,
            "roibin(peaks=pfv3,window=extent,background=bin(1,2,2)|sz(abs=45))",
        ),
        // Windows only: the rest decodes as the fill value (found by fuzz seeding: `roi` asked
        // for roibin-only options and could not be built).
        (vec![2, 128, 96], &two, "roi(panel_rows=64,fill=-1)"),
    ];
    for (shape, data, spec) in cases {
        let meta = ArrayMeta::new(DType::F32, shape.clone());
        let enc = encode_chunk(spec, &meta, data).unwrap();
        assert!(
            enc.len() * 5 < data.len(),
            "{spec}: {} of {}",
            enc.len(),
            data.len()
        );
        let (m, back) = decode_chunk(&enc).unwrap();
        assert_eq!(m, meta);
        let (o, b) = (floats(data), floats(&back));
        let all = if data.len() == one.len() {
            &centres
        } else {
            &c_two
        };
        let r = if spec.contains("extent") { 1 } else { 8 };
        // Frames stack along rows here: frame f's centres sit 128 rows further down.
        assert_windows_exact(&o, &b, all, r, 64, 96);
        let info = frames(&enc).unwrap();
        assert_eq!(
            info.iter().map(|f| f.found).sum::<usize>(),
            all.len(),
            "{spec}"
        );
        // Background: within bound + binning of a Poisson background, far below a photon of 45 ADU... plus the bound.
        let worst = o
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 4000.0, "{spec}: {worst}");
        if spec.starts_with("roi(") {
            let filled = b.iter().filter(|&&x| x == -1.0).count();
            assert!(filled > b.len() / 2, "{spec}: only {filled} fill pixels");
        }
    }
}

#[test]
fn nan_pixels_zero_frames_and_crowded_frames_survive() {
    let meta = ArrayMeta::new(DType::F32, vec![64, 96]);
    // NaN and Inf pixels come back bit-exact.
    let (mut v, _) = frame(1, 4);
    v[100] = f32::NAN;
    v[200] = f32::INFINITY;
    v[300] = f32::from_bits(0x7fc0_1234);
    let enc = encode_chunk("roibin", &meta, &bytes(&v)).unwrap();
    let back = floats(&decode_chunk(&enc).unwrap().1);
    for i in [100, 200, 300] {
        assert_eq!(v[i].to_bits(), back[i].to_bits());
    }
    // A frame of zeros: no peaks, exact zeros back.
    let zeros = vec![0u8; meta.nbytes()];
    let enc = encode_chunk("roibin(min_peaks=1)", &meta, &zeros).unwrap();
    assert_eq!(decode_chunk(&enc).unwrap().1, zeros);
    let info = frames(&enc).unwrap();
    assert_eq!((info[0].found, info[0].non_hit), (0, true));
    // Every pixel a peak: a checkerboard of bright pixels; peaks are capped, the data survive.
    let checker: Vec<f32> = (0..64 * 96)
        .map(|i| {
            if (i / 96 + i % 96) % 2 == 0 {
                5000.0
            } else {
                0.0
            }
        })
        .collect();
    for spec in [
        "roibin(peaks=pf8(min_pix=1,max_peaks=100))",
        "roibin(peaks=pfv3(npix_min=1,rank=1,son_min=0))",
    ] {
        let enc = encode_chunk(spec, &meta, &bytes(&checker)).unwrap();
        let (_, back) = decode_chunk(&enc).unwrap();
        assert_eq!(back.len(), meta.nbytes(), "{spec}");
    }
}

#[test]
fn integer_frames_bin_in_counts() {
    let (v, centres) = frame(1, 5);
    for dtype in [DType::U16, DType::I32] {
        let data: Vec<u8> = v
            .iter()
            .flat_map(|&x| {
                let c = x.max(0.0).round() as u32;
                match dtype {
                    DType::U16 => (c as u16).to_le_bytes().to_vec(),
                    _ => (c as i32).to_le_bytes().to_vec(),
                }
            })
            .collect();
        let meta = ArrayMeta::new(dtype, vec![64, 96]);
        let enc = encode_chunk("roibin(background=bin(2,2)|sz(abs=2))", &meta, &data).unwrap();
        let (_, back) = decode_chunk(&enc).unwrap();
        let es = dtype.size();
        for &(y, x) in &centres {
            for dy in 0..3 {
                let i = ((y + dy - 1) * 96 + x) * es;
                assert_eq!(data[i..i + es], back[i..i + es], "{dtype}");
            }
        }
    }
}

#[test]
fn writer_supplied_centres_and_bad_inputs() {
    let (v, centres) = frame(1, 6);
    let meta = ArrayMeta::new(DType::F32, vec![64, 96]);
    let data = bytes(&v);
    // peaks=given takes the writer's centres; without them it says what to do.
    let err = encode_chunk("roibin(peaks=given)", &meta, &data)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--peaks"), "{err}");
    let list: Vec<[f32; 2]> = centres.iter().map(|&(y, x)| [y as f32, x as f32]).collect();
    let enc = with_centres(vec![list], || {
        encode_chunk("roibin(peaks=given,roi=3)", &meta, &data)
    })
    .unwrap();
    let back = floats(&decode_chunk(&enc).unwrap().1);
    assert_windows_exact(&v, &back, &centres, 3, 64, 96);
    // A mask of the wrong shape names the file and both sizes.
    let dir = std::env::temp_dir().join(format!("roibin-mask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mask = dir.join("mask.npy");
    write_npy(&mask, &[10, 10], NpyData::U8(&[1; 100])).unwrap();
    let spec = format!("roibin(peaks=pf8(mask=\"{}\"))", mask.display());
    let err = encode_chunk(&spec, &meta, &data).unwrap_err().to_string();
    assert!(
        err.contains("mask.npy") && err.contains("[10, 10]") && err.contains("[64, 96]"),
        "{err}"
    );
    let err = encode_chunk(
        "roibin(peaks=pf8(mask=\"/nonexistent/m.npy\"))",
        &meta,
        &data,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot read"), "{err}");
    // A good mask that hides a peak: the finder skips it, the window is not kept.
    let mut m = vec![1u8; 64 * 96];
    let (y, x) = centres[0];
    for dy in 0..3 {
        for dx in 0..3 {
            m[(y + dy - 1) * 96 + x + dx - 1] = 0;
        }
    }
    write_npy(&mask, &[64, 96], NpyData::U8(&m)).unwrap();
    let spec = format!("roibin(peaks=pf8(mask=\"{}\"))", mask.display());
    let enc = encode_chunk(&spec, &meta, &data).unwrap();
    assert_eq!(frames(&enc).unwrap()[0].found, centres.len() - 1);
    // Panel rows that do not divide the frame, ranks a frame cannot have.
    let err = encode_chunk("roibin(panel_rows=50)", &meta, &data)
        .unwrap_err()
        .to_string();
    assert!(err.contains("panel_rows"), "{err}");
    let err = encode_chunk("roibin", &ArrayMeta::new(DType::F32, vec![6144]), &data)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank 1"), "{err}");
    // Corrupted streams are errors, never panics.
    let enc = encode_chunk("roibin", &meta, &data).unwrap();
    for cut in [20, enc.len() / 2, enc.len() - 5] {
        assert!(decode_chunk(&enc[..cut]).is_err());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bin_averages_partial_edges_and_skips_non_finite() {
    let meta = ArrayMeta::new(DType::F32, vec![3, 3]);
    let v = [1.0f32, 3.0, 10.0, 5.0, f32::NAN, 20.0, 7.0, 9.0, 30.0];
    let p = Pipeline::from_spec("bin(2,2)", &DataKind::Array(meta.clone())).unwrap();
    let enc = p.encode(&bytes(&v)).unwrap();
    assert_eq!(floats(&enc), vec![3.0, 15.0, 8.0, 30.0]);
    let back = floats(&p.decode(&enc).unwrap());
    assert_eq!(back, vec![3.0, 3.0, 15.0, 3.0, 3.0, 15.0, 8.0, 8.0, 30.0]);
}

/// Canonicalising a canonical spec changes nothing (tuning files and the plugin key on it), and
/// the spec a chunk stores leaves out run-time `threads`, so any allocation writes the same bytes.
#[test]
fn canonical_specs_are_fixed_points_and_chunks_ignore_threads() {
    let meta = ArrayMeta::new(DType::F32, vec![2, 64, 48]);
    let kind = DataKind::Array(meta.clone());
    for spec in [
        "roibin(exact_above=250,background=bin(2,2)|sz(abs=90))",
        "roibin(roi=4,peaks=pfv3(rank=2),background=bin(2,2)|zfp(accuracy=1))",
        "roibin(background=bin(2,2)|sz(abs=90),threads=2,peaks=pf8(threads=1))",
        "sz(abs=1,threads=2)",
        "chunked(block=1000,codec=shuffle|zstd(5,threads=1))",
        "auto",
    ] {
        let once = Pipeline::from_spec(spec, &kind).unwrap();
        let twice = Pipeline::build(once.canonical(), &kind, "").unwrap();
        assert_eq!(once.canonical(), twice.canonical(), "{spec}");
        assert!(!once.stored_spec().contains("threads"), "{spec}");
    }
    let data: Vec<u8> = (0..meta.len())
        .flat_map(|i| ((i % 97) as f32 * 3.5).to_le_bytes())
        .collect();
    let enc = |spec: &str| encode_chunk(spec, &meta, &data).unwrap();
    assert_eq!(
        enc("roibin(background=bin(2,2)|sz(abs=9),threads=1,peaks=pf8(threads=1))"),
        enc("roibin(background=bin(2,2)|sz(abs=9,threads=2),peaks=pf8(threads=2))")
    );
}

/// Golden ROIBIN chunks (the `roibin`/`roi` streams v1, v2 and v3 inside container v1) keep decoding:
/// windows bit-exact, shape as written. `ROIBIN_BLESS=1` adds missing files, never rewrites.
#[test]
fn roibin_golden_files_keep_decoding() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("ROIBIN_BLESS").is_some();
    let (v, centres) = frame(2, 5);
    let meta = ArrayMeta::new(DType::F32, vec![1, 2, 64, 96]);
    for (name, spec) in [
        (
            "v1_roibin_pf8_f32",
            "roibin(peaks=pf8(adc=500,snr=5),roi=3,background=bin(2,2)|sz(abs=1))",
        ),
        ("v1_roi_pf8_f32", "roi(peaks=pf8(adc=500,snr=5),roi=3)"),
        // Stream v2 (exact pixels as runs) inside container v1.
        (
            "v1_roibin_stream2_pf8_f32",
            "roibin(peaks=pf8(adc=500,snr=5),roi=3,exact_above=2000,background=bin(2,2)|sz(abs=1))",
        ),
        (
            "v1_roi_stream2_pf8_f32",
            "roi(peaks=pf8(adc=500,snr=5),roi=3)",
        ),
        // Stream v3 (each covered pixel once): windows this large overlap and cross panels.
        (
            "v1_roibin_stream3_pf8_f32",
            "roibin(peaks=pf8(adc=500,snr=5),roi=25,exact_above=2000,background=bin(2,2)|sz(abs=1))",
        ),
    ] {
        let path = dir.join(format!("{name}.rbin"));
        if bless && !path.exists() {
            std::fs::write(&path, encode_chunk(spec, &meta, &bytes(&v)).unwrap()).unwrap();
        }
        let chunk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ROIBIN_BLESS=1 writes it)", path.display()));
        let (m, back) = decode_chunk(&chunk).unwrap();
        assert_eq!(m, meta, "{name}");
        let r = if name.contains("stream3") { 25 } else { 3 };
        assert_windows_exact(&v, &floats(&back), &centres, r, 64, 96);
    }
}

/// pf8's radial statistics are float sums over many pixels: they are summed per fixed block
/// in a fixed order, so f32 frames give the same peaks, and the same file, at 1 or 7 threads
/// (capped at the cores there are; the split into rayon jobs differs either way).
#[test]
fn pf8_sums_do_not_depend_on_the_thread_count() {
    let (v, _) = frame(12, 9); // 12 × 64 × 96 = 73 728 pixels: two 64 Ki-pixel blocks
    let meta = ArrayMeta::new(DType::F32, vec![1, 12 * 64, 96]);
    let data = bytes(&v);
    let enc = |t: usize| {
        let spec = format!(
            "roibin(peaks=pf8(adc=500,snr=5,threads={t}),panel_rows=64,threads={t},background=bin(2,2,threads={t})|sz(abs=1,threads={t}))"
        );
        encode_chunk(&spec, &meta, &data).unwrap()
    };
    let one = enc(1);
    for t in [2, 3, 7] {
        assert_eq!(enc(t), one, "threads={t}");
    }
    assert!(frames(&one).unwrap()[0].found >= 36);
}

/// Seeds of the `detector` fuzz target (`fuzz/fuzz_targets/detector.rs`): for each of its
/// specs and layouts, a valid payload prefixed with the selector byte. `ROIBIN_FUZZ_SEEDS=1`
/// writes them; otherwise the committed ones must still decode.
#[test]
fn detector_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/detector");
    let write = std::env::var_os("ROIBIN_FUZZ_SEEDS").is_some();
    // The target's specs, as a writer would store them (files named; a reader never opens them).
    let specs = [
        "roibin(peaks=pf8(adc=50,snr=3),roi=3,background=bin(2,2)|sz(abs=1))",
        "roi(peaks=pfv3(amax_thr=50,atot_thr=60,son_min=3),roi=2)",
        "roibin(peaks=pf8(adc=50,snr=3),roi=2,masked=keep,exact_above=100,background=bin(2,2)|zstd)",
        "bin(2,3)",
    ];
    let layouts = [
        ArrayMeta::new(DType::F32, vec![2, 16, 12]),
        ArrayMeta::new(DType::U16, vec![1, 2, 8, 10]),
        ArrayMeta::new(DType::I32, vec![9, 7]),
    ];
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut checked = 0;
    for (s, spec) in specs.iter().enumerate() {
        for (l, meta) in layouts.iter().enumerate() {
            let data: Vec<u8> = (0..meta.len())
                .flat_map(|i| {
                    let v = if i % 37 == 5 { 900.0 } else { (i % 5) as f64 };
                    let mut b = vec![0u8; meta.dtype.size()];
                    roibin_compressors::detector::elems::put(v, meta.dtype, &mut b);
                    b
                })
                .collect();
            let Ok(chunk) = encode_chunk(spec, meta, &data) else {
                continue; // a layout this spec does not take
            };
            let h = roibin_registry::container::read_header(&chunk).unwrap();
            if h.raw {
                continue;
            }
            let sel = (s + 4 * l) as u8;
            let path = dir.join(format!("seed_{sel:02}"));
            if write {
                let mut seed = vec![sel];
                seed.extend_from_slice(h.sections[0]);
                std::fs::write(&path, seed).unwrap();
            }
            let seed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (ROIBIN_FUZZ_SEEDS=1 writes it)", path.display())
            });
            let p =
                Pipeline::decoder(&spec.parse().unwrap(), &DataKind::Array(meta.clone())).unwrap();
            p.decode(&seed[1..]).unwrap();
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} seeds");
}

/// `max_peaks` keeps the brightest peaks, not the first in raster order.
#[test]
fn max_peaks_keeps_the_brightest() {
    let (mut v, centres) = frame(1, 4);
    let (y, x) = centres[2]; // the last in raster order
    v[y * 96 + x] += 20_000.0;
    let meta = ArrayMeta::new(DType::F32, vec![64, 96]);
    for finder in [
        "pf8(adc=500,snr=5,max_peaks=1)",
        "dispersion(gain=0,max_peaks=1)",
    ] {
        let spec = format!("roi(peaks={finder},roi=2)");
        let enc = encode_chunk(&spec, &meta, &bytes(&v)).unwrap();
        let f = &frames(&enc).unwrap()[0];
        assert!(f.found >= 3, "{finder}: found {}", f.found);
        assert_eq!(f.windows.len(), 1, "{finder}");
        assert_eq!(
            (f.windows[0].y as usize, f.windows[0].x as usize),
            (y, x),
            "{finder}"
        );
    }
}

/// DIALS's dispersion finders find the planted peaks on every panel, with the gain given or
/// estimated from the frame, and keep the windows around them exact.
#[test]
fn dispersion_finders_find_planted_peaks() {
    let (v, centres) = frame(2, 11);
    let meta = ArrayMeta::new(DType::F32, vec![1, 128, 96]);
    for finder in [
        "dispersion(gain=0)",
        "dispersion(gain=45)",
        "dispersion_extended(gain=0)",
    ] {
        let spec =
            format!("roibin(peaks={finder},panel_rows=64,roi=3,background=bin(2,2)|sz(abs=20))");
        let enc = encode_chunk(&spec, &meta, &bytes(&v)).unwrap();
        let f = &frames(&enc).unwrap()[0];
        for &(y, x) in &centres {
            assert!(
                f.windows
                    .iter()
                    .any(|w| (w.y as i64 - y as i64).abs() <= 1
                        && (w.x as i64 - x as i64).abs() <= 1),
                "{finder}: no window at {y},{x}: {:?}",
                f.windows
            );
        }
        let back = floats(&decode_chunk(&enc).unwrap().1);
        assert_windows_exact(&v, &back, &centres, 2, 64, 96);
    }
}

/// A PILATUS-like int32 frame: −1 module gaps, −2 bad pixels, a masked hot pixel. With the
/// default settings every one of them decodes to its original value, the gaps cost next to
/// nothing, and none of them drags its bin's neighbours.
#[test]
fn detector_conventions_survive_on_int32() {
    let (rows, cols) = (128usize, 96usize);
    let (v, centres) = frame(2, 21);
    let mut px: Vec<i32> = v
        .iter()
        .map(|&x| (x / 45.0).round().max(0.0) as i32 * 45)
        .collect();
    for r in 0..rows {
        for c in 0..cols {
            if c % 48 >= 44 || r % 64 >= 60 {
                px[r * cols + c] = -1; // module gaps
            }
        }
    }
    px[30 * cols + 30] = -2; // a bad pixel
    px[40 * cols + 40] = 144_917; // a hot pixel the mask marks
    let dir = std::env::temp_dir().join(format!("roibin-conv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mask = dir.join("m.npy");
    let mut m = vec![1u8; rows * cols];
    m[40 * cols + 40] = 0;
    write_npy(&mask, &[rows, cols], NpyData::U8(&m)).unwrap();
    let meta = ArrayMeta::new(DType::I32, vec![1, rows, cols]);
    let data: Vec<u8> = px.iter().flat_map(|x| x.to_le_bytes()).collect();
    let spec = format!(
        r#"roibin(peaks=pf8(adc=500,snr=5,mask="{}"),panel_rows=64,roi=3,background=bin(2,2)|sz(abs=45))"#,
        mask.display()
    );
    let enc = encode_chunk(&spec, &meta, &data).unwrap();
    let back: Vec<i32> = decode_chunk(&enc)
        .unwrap()
        .1
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let gaps = px.iter().filter(|&&x| x == -1).count();
    for (i, (&a, &b)) in px.iter().zip(&back).enumerate() {
        if a < 0 || i == 40 * cols + 40 {
            assert_eq!(a, b, "flagged pixel {i} changed");
        } else {
            // Nothing smears: trusted pixels stay within the bound of their 2×2 bin's
            // photon counts (bins here hold 0–few photons), never thousands of counts off.
            assert!((a - b).abs() <= 45 * 4 + 45, "pixel {i}: {a} -> {b}");
        }
    }
    let wins: Vec<(usize, usize)> = centres
        .iter()
        .copied()
        .filter(|&(y, x)| px[y * cols + x] >= 0)
        .collect();
    let as_f32 = |p: &[i32]| p.iter().map(|&x| x as f32).collect::<Vec<_>>();
    assert_windows_exact(&as_f32(&px), &as_f32(&back), &wins, 2, 64, 96);
    // The gap pixels (≈ 1 in 9) cost far less than a byte each.
    let plain = encode_chunk(
        &spec.replace(r#"roi=3,"#, "roi=3,sentinels=none,masked=fill,"),
        &meta,
        &data,
    )
    .unwrap();
    assert!(
        enc.len() < plain.len() + gaps / 8,
        "{} vs {} (+{gaps} gap pixels)",
        enc.len(),
        plain.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// EIGER-like counts: gaps at the type's maximum decode bit-exact in u16 and u32.
#[test]
fn eiger_gaps_at_the_type_maximum_survive() {
    let (v, _) = frame(1, 3);
    for dtype in [DType::U16, DType::U32] {
        let meta = ArrayMeta::new(dtype, vec![64, 96]);
        let mut data = vec![0u8; meta.nbytes()];
        for (i, &x) in v.iter().enumerate() {
            let x = if i % 96 >= 90 {
                f64::INFINITY
            } else {
                (x / 45.0).round().max(0.0) as f64
            };
            roibin_compressors::detector::elems::put(
                x,
                dtype,
                &mut data[i * dtype.size()..(i + 1) * dtype.size()],
            );
        }
        let enc = encode_chunk(
            "roibin(peaks=pf8(adc=20,snr=5),roi=2,background=bin(2,2)|sz(abs=1))",
            &meta,
            &data,
        )
        .unwrap();
        let back = decode_chunk(&enc).unwrap().1;
        let es = dtype.size();
        for i in (0..64 * 96).filter(|i| i % 96 >= 90) {
            assert_eq!(
                &back[i * es..(i + 1) * es],
                &data[i * es..(i + 1) * es],
                "{dtype} gap pixel {i}"
            );
        }
    }
}

/// A cold (dead) pixel kept by `exact_below` decodes bit-exact and leaves its bin alone;
/// a fill an integer cannot hold is an error, not a silent saturation.
#[test]
fn exact_below_and_fill_checks() {
    let meta = ArrayMeta::new(DType::F32, vec![32, 32]);
    let mut v = vec![100.0f32; 32 * 32];
    v[10 * 32 + 10] = -5000.0;
    let spec = "roibin(peaks=pf8(adc=1e6),exact_below=0,background=bin(2,2)|sz(abs=1))";
    let back = floats(
        &decode_chunk(&encode_chunk(spec, &meta, &bytes(&v)).unwrap())
            .unwrap()
            .1,
    );
    assert_eq!(back[10 * 32 + 10], -5000.0);
    for (i, &b) in back.iter().enumerate().filter(|&(i, _)| i != 10 * 32 + 10) {
        assert!((b - 100.0).abs() <= 1.0, "pixel {i}: {b}");
    }
    let int = ArrayMeta::new(DType::I32, vec![32, 32]);
    let e = encode_chunk("roibin(fill=-1e30)", &int, &vec![0; int.nbytes()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("roibin:fill") && e.contains("i32"), "{e}");
    let e = encode_chunk(
        "roi(fill=0.5)",
        &ArrayMeta::new(DType::U16, vec![8, 8]),
        &[0; 128],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("fill"), "{e}");
}

/// `roibin(auto)`: windows from DIALS's dispersion test with the gain taken from the data,
/// checked against DIALS's default finder on the decoded chunk, so every spot it finds on the
/// originals is found on the decoded frames and none is invented, at a coarse bound.
#[test]
fn roibin_auto_keeps_dials_spots() {
    let (v, _) = frame(2, 17);
    let meta = ArrayMeta::new(DType::F32, vec![1, 128, 96]);
    let spec = "roibin(auto,background=bin(2,2)|sz(abs=45))";
    let enc = encode_chunk(spec, &meta, &bytes(&v)).unwrap();
    let back = decode_chunk(&enc).unwrap().1;
    let finder = Pipeline::from_spec(
        "dispersion_extended(gain=0,max_peaks=100000)",
        &DataKind::Array(ArrayMeta::new(DType::F32, vec![128, 96])),
    )
    .unwrap();
    let spots = |b: &[u8]| PeakList::read(&finder.encode(b).unwrap()).unwrap().peaks;
    let (orig, dec) = (spots(&bytes(&v)), spots(&back));
    assert!(orig.len() >= 6, "{} spots", orig.len());
    let near = |a: &[_], p: &roibin_compressors::detector::peaks::Peak| {
        a.iter()
            .any(|q: &roibin_compressors::detector::peaks::Peak| {
                (q.y - p.y).hypot(q.x - p.x) <= 1.5
            })
    };
    assert!(orig.iter().all(|p| near(&dec, p)), "lost a spot");
    assert!(dec.iter().all(|p| near(&orig, p)), "invented a spot");
    // The stored spec says auto, and the chunk is far smaller than the frame.
    let h = roibin_registry::container::read_header(&enc).unwrap();
    assert!(h.spec.starts_with("roibin(peaks=auto"), "{}", h.spec);
    assert!(enc.len() * 4 < meta.nbytes(), "{} bytes", enc.len());
}

/// A gap pixel inside a window must not enter the window's rim mean: that mean fills the
/// window in the background, and bins straddling the window would smear it into trusted
/// pixels outside (once seen as errors of 1.5·10⁹ counts next to EIGER's gaps).
#[test]
fn sentinels_inside_windows_do_not_smear() {
    let (rows, cols) = (64usize, 96usize);
    let mut px = vec![10u32; rows * cols];
    for r in 0..rows {
        px[r * cols + 50] = u32::MAX; // a gap column
    }
    for dy in 0..3 {
        for dx in 0..3 {
            px[(30 + dy) * cols + 47 + dx] = 5000; // a peak next to it
        }
    }
    let meta = ArrayMeta::new(DType::U32, vec![rows, cols]);
    let data: Vec<u8> = px.iter().flat_map(|x| x.to_le_bytes()).collect();
    let enc = encode_chunk(
        "roibin(peaks=dispersion,roi=4,background=bin(2,2)|sz(abs=1))",
        &meta,
        &data,
    )
    .unwrap();
    assert!(!frames(&enc).unwrap()[0].windows.is_empty());
    let back: Vec<u32> = decode_chunk(&enc)
        .unwrap()
        .1
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for (i, (&a, &b)) in px.iter().zip(&back).enumerate() {
        if a == u32::MAX || a == 5000 {
            assert_eq!(a, b, "pixel {i}");
        } else {
            assert!(a.abs_diff(b) <= 2500, "pixel {i}: {a} -> {b}");
        }
    }
}

/// `roibin(auto)` on a chunk of several frames of several panels (4-D), u16 counts with gaps.
#[test]
fn roibin_auto_on_multi_frame_panel_chunks() {
    let (v, centres) = frame(2, 23);
    let mut data = vec![];
    for f in 0..3 {
        for (i, &x) in v.iter().enumerate() {
            let c = if i % 96 == 50 {
                u16::MAX
            } else {
                ((x / 45.0).round().max(0.0) as u16) + f
            };
            data.extend_from_slice(&c.to_le_bytes());
        }
    }
    let meta = ArrayMeta::new(DType::U16, vec![3, 2, 64, 96]);
    let enc = encode_chunk("roibin(auto,background=bin(2,2)|sz(abs=1))", &meta, &data).unwrap();
    let back = decode_chunk(&enc).unwrap().1;
    let px = |b: &[u8], i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    for f in 0..3 {
        for &(y, x) in &centres {
            let i = f * 2 * 64 * 96 + y * 96 + x;
            assert_eq!(px(&back, i), px(&data, i), "frame {f} peak {y},{x}");
        }
        for y in 0..128 {
            let i = f * 2 * 64 * 96 + y * 96 + 50;
            assert_eq!(px(&back, i), u16::MAX, "gap");
        }
    }
    assert_eq!(frames(&enc).unwrap().len(), 3);
}

/// `roibin(auto)`'s promise, held to the letter: DIALS's default finder (its `check`) finds
/// the same spots on the decoded chunk as on the original, each made of the same pixels
/// (equal pixel count and centroid), on a synthetic frame at a coarse bound (where the check
/// must add windows over the encoded background) and on the real JUNGFRAU modules.
#[test]
fn roibin_auto_decoded_spots_have_the_original_pixels() {
    let check = "dispersion_extended(gain=0,min_pix=1,max_peaks=1048576)";
    // Counts with a gap column (u16 sentinels), at a bound of several counts.
    let counts: Vec<u8> = frame(2, 23)
        .0
        .iter()
        .enumerate()
        .flat_map(|(i, &x)| {
            let c = if i % 96 == 50 {
                u16::MAX
            } else {
                (x / 45.0).round().max(0.0) as u16
            };
            c.to_le_bytes()
        })
        .collect();
    let mut cases = vec![
        (
            "synthetic",
            bytes(&frame(2, 17).0),
            DType::F32,
            vec![128, 96],
            "roibin(auto,background=bin(2,2)|sz(abs=45))",
        ),
        (
            "counts with gaps",
            counts,
            DType::U16,
            vec![128, 96],
            "roibin(auto,background=bin(2,2)|sz(abs=3))",
        ),
    ];
    for i in 0..4 {
        let path = format!("../../shared/data/jungfrau_module_conv{i}.f32");
        match std::fs::read(&path) {
            Ok(b) => cases.push((
                "jungfrau",
                b,
                DType::F32,
                vec![512, 1024],
                "roibin(auto,background=bin(2,2)|sz(abs=1))",
            )),
            Err(_) => eprintln!("{path} absent: real-frame case skipped"),
        }
    }
    for (name, data, dtype, shape, spec) in cases {
        let meta = ArrayMeta::new(dtype, shape.clone());
        let enc = encode_chunk(spec, &meta, &data).unwrap();
        let back = decode_chunk(&enc).unwrap().1;
        let finder =
            Pipeline::from_spec(check, &DataKind::Array(ArrayMeta::new(dtype, shape))).unwrap();
        let spots = |b: &[u8]| PeakList::read(&finder.encode(b).unwrap()).unwrap().peaks;
        let (orig, dec) = (spots(&data), spots(&back));
        assert!(orig.len() >= 6, "{name}: {} spots", orig.len());
        assert_eq!(orig.len(), dec.len(), "{name}: spot count");
        for p in &orig {
            assert!(
                dec.iter()
                    .any(|q| q.npix == p.npix && (q.y - p.y).hypot(q.x - p.x) <= 1e-3),
                "{name}: spot at {},{} ({} px) not the same on the decoded frame",
                p.y,
                p.x,
                p.npix
            );
        }
    }
}

/// Buffers a codec keeps between chunks (the background's input, its flags, pf8's marks,
/// regrouped frames and samples) never carry one chunk into the next: a pipeline that encoded other
/// chunks first writes the same bytes as a fresh one, on one-frame and several-frame chunks.
#[test]
fn kept_buffers_never_carry_a_chunk_into_the_next() {
    let (v, _) = frame(2, 23);
    let chunk = |frames: usize, k: u32| -> Vec<u8> {
        (0..frames)
            .flat_map(|f| {
                v.iter()
                    .map(move |&x| x + (f as f32 + 1.0) * k as f32 * 37.0)
            })
            .flat_map(f32::to_le_bytes)
            .collect()
    };
    for frames in [1, 2] {
        let meta = ArrayMeta::new(DType::F32, vec![frames, 2 * 64, 96]);
        let kind = DataKind::Array(meta.clone());
        for spec in [
            "roibin(panel_rows=64,exact_above=250,background=bin(2,2)|sz(abs=9))",
            "roibin(auto,panel_rows=64,background=bin(2,2)|sz(abs=9))",
            "roibin(peaks=pf8(adc=50,sample=4),panel_rows=64,exact_above=250,background=bin(2,2)|sz(abs=9))",
        ] {
            let used = Pipeline::from_spec(spec, &kind).unwrap();
            for k in 0..3 {
                used.encode(&chunk(frames, k)).unwrap();
            }
            let last = chunk(frames, 7);
            let fresh = Pipeline::from_spec(spec, &kind).unwrap();
            assert_eq!(
                used.encode(&last).unwrap(),
                fresh.encode(&last).unwrap(),
                "{spec}, {frames} frame(s) a chunk"
            );
        }
    }
}
