//! Error-bounded lossy codecs: the bound holds element-wise on adversarial data, non-finite
//! values come back bit-exact, and corrupted streams give errors, never panics.

use proptest::prelude::*;
use roibin_compressors::{decode_chunk, encode_chunk};
use roibin_registry::metrics::to_f64;
use roibin_registry::{ArrayMeta, DType};

/// Data generators: each returns f64 values that are then cast to the dtype.
fn values(style: u8, n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| match style {
            0 => 3.25,                                                               // constant
            1 => rnd() * 2.0 - 1.0,                                                  // white noise
            2 => (i as f64 * 0.01).sin() * 100.0 + (i as f64 * 0.0003).cos() * 50.0, // smooth
            3 => (rnd() - 0.5) * 2e30,                                               // huge range
            4 => rnd() * 1e-310,                                                     // subnormals
            5 => {
                [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0, -0.0][i % 5]
                    * if i % 7 == 0 { 1.0 } else { rnd() }
            } // non-finite mix
            6 => (rnd() * 6.0).floor() * 45.0 + rnd(), // detector-like photons
            _ => (i % 97) as f64 - 48.0,               // saw
        })
        .collect()
}

fn bytes_of(vals: &[f64], dtype: DType) -> Vec<u8> {
    vals.iter()
        .flat_map(|&v| -> Vec<u8> {
            match dtype {
                DType::F32 => (v as f32).to_le_bytes().to_vec(),
                DType::F64 => v.to_le_bytes().to_vec(),
                DType::U8 => (v.abs().min(255.0) as u8).to_le_bytes().to_vec(),
                DType::U16 => (v.abs().min(65535.0) as u16).to_le_bytes().to_vec(),
                DType::U32 => (v.abs().min(4e9) as u32).to_le_bytes().to_vec(),
                DType::I16 => (v.clamp(-32768.0, 32767.0) as i16).to_le_bytes().to_vec(),
                DType::I32 => (v.clamp(-2e9, 2e9) as i32).to_le_bytes().to_vec(),
                DType::I64 => (v.clamp(-9e18, 9e18) as i64).to_le_bytes().to_vec(),
                DType::U64 => (v.abs().min(1.8e19) as u64).to_le_bytes().to_vec(),
                DType::I8 => (v.clamp(-128.0, 127.0) as i8).to_le_bytes().to_vec(),
            }
        })
        .collect()
}

/// Check the bound element-wise; non-finite values must come back bit-exact.
fn check_bound(meta: &ArrayMeta, orig: &[u8], dec: &[u8], eb: f64, what: &str) {
    let es = meta.dtype.size();
    let (a, b) = (to_f64(orig, meta.dtype), to_f64(dec, meta.dtype));
    for i in 0..a.len() {
        if a[i].is_finite() {
            let err = (a[i] - b[i]).abs();
            assert!(
                err <= eb,
                "{what}: element {i}: |{} - {}| = {err} > {eb}",
                a[i],
                b[i]
            );
        } else {
            assert_eq!(
                &orig[i * es..(i + 1) * es],
                &dec[i * es..(i + 1) * es],
                "{what}: non-finite element {i}"
            );
        }
    }
}

fn finite_range(orig: &[u8], dtype: DType) -> f64 {
    let v: Vec<f64> = to_f64(orig, dtype)
        .into_iter()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
}

fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..13, 1..=4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn sz_bound_holds_everywhere(
        shape in shapes(),
        dtype in prop::sample::select(vec![DType::F32, DType::F64, DType::U16, DType::I32, DType::U8, DType::I64]),
        style in 0u8..8,
        seed in any::<u64>(),
        mode in 0u8..3,
        bound in prop::sample::select(vec![0.0f64, 1e-6, 0.01, 0.5, 1.0, 10.0, 90.0, 1e25]),
        predictor in prop::sample::select(vec!["auto", "lorenzo", "lorenzo2d", "interp_linear", "interp_cubic", "block_mean"]),
    ) {
        let meta = ArrayMeta::new(dtype, shape);
        let orig = bytes_of(&values(style, meta.len(), seed), dtype);
        let (spec, eb) = match mode {
            0 => (format!("sz(abs={bound},predictor={predictor})"), bound),
            1 => {
                let r = (bound / 100.0).min(1.0);
                (format!("sz(rel={r},predictor={predictor})"), r * finite_range(&orig, dtype))
            }
            _ => {
                let p = 20.0 + (bound.min(100.0));
                (format!("sz(psnr={p},predictor={predictor})"), finite_range(&orig, dtype) * 3f64.sqrt() * 10f64.powf(-p / 20.0))
            }
        };
        let eb = if dtype.is_float() { eb } else { eb.floor() };
        let enc = encode_chunk(&spec, &meta, &orig).unwrap();
        let (m, dec) = decode_chunk(&enc).unwrap();
        prop_assert_eq!(&m, &meta);
        check_bound(&meta, &orig, &dec, eb, &spec);
    }

    #[test]
    fn sz_decoder_survives_garbage(bytes in prop::collection::vec(any::<u8>(), 0..400), flip in any::<usize>()) {
        let meta = ArrayMeta::new(DType::F32, vec![16, 16]);
        let orig = bytes_of(&values(2, 256, 1), DType::F32);
        let enc = encode_chunk("sz(abs=0.1)", &meta, &orig).unwrap();
        // A valid container around a damaged payload: the checksum catches it first...
        let mut bad = enc.clone();
        let i = flip % bad.len();
        bad[i] ^= 0x40;
        prop_assert!(decode_chunk(&bad).is_err());
        // ...and the sz decoder itself never panics on any payload.
        let p = roibin_compressors::pipeline(&"sz(abs=0.1)".parse().unwrap(), &meta).unwrap();
        let _ = p.decode(&bytes);
    }
}

#[test]
fn sz_compresses_smooth_fields_hard_and_keeps_the_bound() {
    let meta = ArrayMeta::new(DType::F32, vec![64, 64, 64]);
    let vals: Vec<f64> = (0..meta.len())
        .map(|i| {
            let (x, y, z) = ((i % 64) as f64, (i / 64 % 64) as f64, (i / 4096) as f64);
            (x * 0.1).sin() * (y * 0.07).cos() * 100.0 + z * 0.5
        })
        .collect();
    let orig = bytes_of(&vals, DType::F32);
    for (spec, min_ratio) in [
        ("sz(abs=0.01)", 8.0),
        ("sz(abs=0.1,predictor=interp_cubic)", 20.0),
        ("sz(rel=1e-3)", 15.0),
    ] {
        let enc = encode_chunk(spec, &meta, &orig).unwrap();
        let ratio = orig.len() as f64 / enc.len() as f64;
        assert!(ratio > min_ratio, "{spec}: ratio {ratio}");
        let dec = decode_chunk(&enc).unwrap().1;
        let eb = if spec.contains("rel") {
            1e-3 * finite_range(&orig, DType::F32)
        } else if spec.contains("0.01") {
            0.01
        } else {
            0.1
        };
        check_bound(&meta, &orig, &dec, eb, spec);
    }
}

#[test]
fn sz_options_are_validated() {
    let meta = ArrayMeta::new(DType::F32, vec![8]);
    let data = vec![0u8; 32];
    for (spec, needle) in [
        ("sz", "exactly one of abs="),
        ("sz(abs=1,rel=0.1)", "exactly one of abs="),
        ("sz(abs=-1)", "sz:abs"),
        ("sz(abs=1,predictor=magic)", "sz:predictor"),
    ] {
        let e = encode_chunk(spec, &meta, &data).unwrap_err().to_string();
        assert!(e.contains(needle), "{spec}: {e}");
    }
}

/// Golden lossy chunks: files written by this format version keep decoding, within their bound.
#[test]
fn lossy_golden_files_keep_decoding() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("ROIBIN_BLESS").is_some();
    for (name, dtype, spec, eb, style) in [
        (
            "v1_sz_lorenzo_f32",
            DType::F32,
            "sz(abs=0.5,predictor=lorenzo)",
            0.5,
            2u8,
        ),
        (
            "v1_sz_interp_f64",
            DType::F64,
            "sz(abs=10,predictor=interp_cubic)",
            10.0,
            2,
        ),
        (
            "v1_sz_blockmean_f32",
            DType::F32,
            "sz(abs=90,predictor=block_mean)",
            90.0,
            6,
        ),
        ("v1_sz_counts_u16", DType::U16, "sz(abs=1)", 1.0, 6),
        // Codes stored as runs of "no change" (since 2026-12-03).
        ("v1_sz_runs_f32", DType::F32, "sz(abs=45)", 45.0, 7),
        // Interpolation levels stored with the piece (since 2026-12-03).
        (
            "v1_sz_levels_f32",
            DType::F32,
            "sz(abs=10,predictor=interp_cubic)",
            10.0,
            2,
        ),
        (
            "v1_zfp_accuracy_f32",
            DType::F32,
            "zfp(accuracy=0.5)",
            0.5,
            2,
        ),
        (
            "v1_zfp_reversible_i32",
            DType::I32,
            "zfp(reversible=1)",
            0.0,
            6,
        ),
        (
            "v1_zfp_rate_f64",
            DType::F64,
            "zfp(rate=16)",
            f64::INFINITY,
            2,
        ),
        // Compact block headers, ZFP's size (since 2026-12-04).
        (
            "v1_zfp_compact_accuracy_f32",
            DType::F32,
            "zfp(accuracy=0.5)",
            0.5,
            2,
        ),
        (
            "v1_zfp_compact_nonfinite_f32",
            DType::F32,
            "zfp(accuracy=0.01)",
            0.01,
            5,
        ),
        (
            "v1_zfp_compact_rate_f32",
            DType::F32,
            "zfp(rate=12)",
            f64::INFINITY,
            6,
        ),
        (
            "v1_zfp_compact_precision_f64",
            DType::F64,
            "zfp(precision=20)",
            f64::INFINITY,
            5,
        ),
    ] {
        let meta = ArrayMeta::new(dtype, vec![5, 37, 41]);
        let orig = bytes_of(&values(style, meta.len(), 11), dtype);
        let path = dir.join(format!("{name}.rbin"));
        // Blessing only adds missing files: existing ones are the format's history.
        if bless && !path.exists() {
            std::fs::write(&path, encode_chunk(spec, &meta, &orig).unwrap()).unwrap();
        }
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ROIBIN_BLESS=1 writes it)", path.display()));
        let (m, dec) = decode_chunk(&bytes).unwrap();
        assert_eq!(m, meta, "{name}");
        check_bound(&meta, &orig, &dec, eb, name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    #[test]
    fn zfp_accuracy_bound_holds_and_reversible_is_exact(
        shape in shapes(),
        dtype in prop::sample::select(vec![DType::F32, DType::F64, DType::I32, DType::I64]),
        style in 0u8..8,
        seed in any::<u64>(),
        tol in prop::sample::select(vec![0.0f64, 1e-6, 0.01, 0.5, 1.0, 90.0, 1e20]),
    ) {
        let meta = ArrayMeta::new(dtype, shape);
        let orig = bytes_of(&values(style, meta.len(), seed), dtype);
        let spec = format!("zfp(accuracy={tol})");
        let (_, dec) = decode_chunk(&encode_chunk(&spec, &meta, &orig).unwrap()).unwrap();
        check_bound(&meta, &orig, &dec, if dtype.is_float() { tol } else { tol.floor() }, &spec);
        let (_, exact) = decode_chunk(&encode_chunk("zfp(reversible=1)", &meta, &orig).unwrap()).unwrap();
        prop_assert_eq!(&exact, &orig);
    }

    #[test]
    fn zfp_rate_and_precision_decode_to_the_right_shape(
        shape in shapes(),
        dtype in prop::sample::select(vec![DType::F32, DType::F64]),
        seed in any::<u64>(),
        rate in 1u32..33,
    ) {
        let meta = ArrayMeta::new(dtype, shape);
        let orig = bytes_of(&values(2, meta.len(), seed), dtype);
        for spec in [format!("zfp(rate={rate})"), format!("zfp(precision={rate})")] {
            let (m, dec) = decode_chunk(&encode_chunk(&spec, &meta, &orig).unwrap()).unwrap();
            prop_assert_eq!(m, meta.clone());
            prop_assert_eq!(dec.len(), orig.len());
        }
    }

    #[test]
    fn zfp_decoder_survives_garbage(bytes in prop::collection::vec(any::<u8>(), 0..400), mode in 0usize..4) {
        let meta = ArrayMeta::new(DType::F32, vec![9, 13]);
        let spec = ["zfp(accuracy=0.1)", "zfp(rate=8)", "zfp(precision=12)", "zfp(reversible=1)"][mode];
        let p = roibin_compressors::pipeline(&spec.parse().unwrap(), &meta).unwrap();
        let _ = p.decode(&bytes);
    }

    /// Valid 2-D and 3-D float32 streams (whole blocks take the decoders that work in
    /// registers) with a byte flipped or the stream cut: an error or values, never a panic.
    #[test]
    fn zfp_decoder_survives_damaged_streams(
        seed in any::<u64>(),
        mode in 0usize..2,
        three_d in any::<bool>(),
        at in any::<usize>(),
        xor in 1u8..=255,
        cut in any::<bool>(),
    ) {
        let shape = if three_d { vec![6, 9, 13] } else { vec![17, 23] };
        let meta = ArrayMeta::new(DType::F32, shape);
        let spec = ["zfp(accuracy=0.5)", "zfp(precision=10)"][mode];
        let p = roibin_compressors::pipeline(&spec.parse().unwrap(), &meta).unwrap();
        let orig = bytes_of(&values(2, meta.len(), seed), DType::F32);
        let mut enc = p.encode(&orig).unwrap();
        let i = at % enc.len();
        if cut {
            enc.truncate(i);
        } else {
            enc[i] ^= xor;
        }
        if let Ok(dec) = p.decode(&enc) {
            prop_assert_eq!(dec.len(), orig.len());
        }
    }
}

#[test]
fn zfp_rate_mode_keeps_non_finite_chunks_raw_and_rate_is_fixed() {
    let meta = ArrayMeta::new(DType::F32, vec![16, 16]);
    let mut vals = values(2, 256, 3);
    let orig = bytes_of(&vals, DType::F32);
    let enc = encode_chunk("zfp(rate=8)", &meta, &orig).unwrap();
    // 16 blocks of 16 values at 8 bits each, plus headers of the stream and container.
    assert!(enc.len() < 256 + 200, "{}", enc.len());
    // A NaN cannot fit a fixed-rate block: the chunk is kept whole and exact, inside the
    // container (flagged raw), never refused (which HDF5 would turn into an unfiltered chunk).
    vals[17] = f64::NAN;
    vals[40] = f64::INFINITY;
    let with_nan = bytes_of(&vals, DType::F32);
    let enc = encode_chunk("zfp(rate=8)", &meta, &with_nan).unwrap();
    assert!(roibin_registry::container::read_header(&enc).unwrap().raw);
    assert_eq!(decode_chunk(&enc).unwrap(), (meta, with_nan));
}

/// `ROIBIN_FUZZ_SEEDS=1 cargo test --test lossy fuzz_seeds` writes seed corpora for the fuzz
/// targets in `fuzz/` (valid streams for their layouts); otherwise it checks they decode.
#[test]
fn fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = std::env::var_os("ROIBIN_FUZZ_SEEDS").is_some();
    let layouts = [
        (DType::F32, vec![7usize, 9]),
        (DType::F64, vec![3, 4, 5]),
        (DType::U16, vec![33]),
        (DType::I32, vec![2, 2, 3, 4]),
    ];
    let zfp_layouts = [
        (DType::F32, vec![7usize, 9]),
        (DType::F64, vec![3, 4, 5]),
        (DType::I32, vec![33]),
        (DType::I64, vec![2, 2, 3, 4]),
    ];
    for (target, spec, list) in [
        ("sz", "sz(abs=1)", &layouts),
        ("zfp", "zfp(accuracy=0.5)", &zfp_layouts),
    ] {
        for (sel, (dtype, shape)) in list.iter().enumerate() {
            for style in [2u8, 5, 6] {
                let meta = ArrayMeta::new(*dtype, shape.clone());
                let orig = bytes_of(&values(style, meta.len(), 5), *dtype);
                let p = roibin_compressors::pipeline(&spec.parse().unwrap(), &meta).unwrap();
                let payload = p.encode(&orig).unwrap();
                assert!(p.decode(&payload).is_ok());
                let mut seed = vec![sel as u8];
                seed.extend_from_slice(&payload);
                let chunk = encode_chunk(spec, &meta, &orig).unwrap();
                if write {
                    for (t, bytes) in [(target, &seed), ("container", &chunk)] {
                        let dir = root.join(t);
                        std::fs::create_dir_all(&dir).unwrap();
                        std::fs::write(dir.join(format!("{target}_{sel}_{style}")), bytes).unwrap();
                    }
                }
            }
        }
    }
}
