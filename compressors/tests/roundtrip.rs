//! Every lossless graph round-trips bit-exactly on every dtype and rank, and the registry's
//! option and spec errors say what is wrong.

use proptest::prelude::*;
use roibin_compressors::{decode_chunk, encode_chunk};
use roibin_registry::{container, ArrayMeta, DType, Error};

const GRAPHS: &[&str] = &[
    "auto",
    "none",
    "shuffle|zstd(3)",
    "bitshuffle|lz4",
    "bitshuffle(block=64)|zstd(level=1,block=1000)",
    "delta|bitshuffle|zstd",
    "delta|shuffle|bzip2(level=1)",
    "lz4(block=0)",
    "shuffle(threads=2)|lz4(threads=1,block=100)",
    "bzip2(block=333)",
    "fast",
    "strong",
    "chunked(block=100,codec=delta|bitshuffle|lz4)",
    "chunked(block=64,codec=auto,threads=1)",
];

fn arb_chunk() -> impl Strategy<Value = (ArrayMeta, Vec<u8>)> {
    let dtype = prop::sample::select(DType::ALL.to_vec());
    let shape = prop::collection::vec(1usize..9, 1..=4);
    (dtype, shape, any::<u64>(), 0u8..4).prop_map(|(dtype, shape, seed, style)| {
        let meta = ArrayMeta::new(dtype, shape);
        let mut s = seed | 1;
        let data = (0..meta.nbytes())
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match style {
                    0 => s as u8, // noise
                    1 => 0,       // constant
                    2 => {
                        if i % dtype.size() == 0 {
                            (s % 5) as u8
                        } else {
                            0
                        }
                    } // small counts
                    _ => (i / dtype.size()) as u8, // ramp
                }
            })
            .collect();
        (meta, data)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn lossless_graphs_round_trip((meta, data) in arb_chunk(), g in prop::sample::select(GRAPHS.to_vec())) {
        let enc = encode_chunk(g, &meta, &data).unwrap();
        // Raw fallback: never larger than the input plus the header.
        prop_assert!(enc.len() <= data.len() + 200);
        let (m, d) = decode_chunk(&enc).unwrap();
        prop_assert_eq!(m, meta);
        prop_assert_eq!(d, data);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_chunk(&bytes);
    }
}

#[test]
fn large_multiblock_chunk_round_trips_and_shrinks() {
    let meta = ArrayMeta::new(DType::U32, vec![3, 517, 1031]);
    let data: Vec<u8> = (0..meta.len() as u32)
        .flat_map(|i| (i.wrapping_mul(2654435761) >> 29).to_le_bytes())
        .collect();
    for g in [
        "bitshuffle|lz4",
        "bitshuffle|zstd(level=5)",
        "auto",
        "delta|bitshuffle|zstd(block=65536)",
    ] {
        let enc = encode_chunk(g, &meta, &data).unwrap();
        assert!(
            enc.len() * 5 < data.len(),
            "{g}: {} of {}",
            enc.len(),
            data.len()
        );
        assert_eq!(decode_chunk(&enc).unwrap().1, data, "{g}");
    }
}

#[test]
fn output_does_not_depend_on_threads() {
    let meta = ArrayMeta::new(DType::U16, vec![700, 900]);
    let data: Vec<u8> = (0..meta.len() as u32)
        .flat_map(|i| ((i.wrapping_mul(7919) % 13) as u16).to_le_bytes())
        .collect();
    let one = encode_chunk("bitshuffle(threads=1)|zstd(threads=1)", &meta, &data).unwrap();
    let two = encode_chunk("bitshuffle(threads=2)|zstd(threads=3)", &meta, &data).unwrap();
    let h1 = container::read_header(&one).unwrap();
    let h2 = container::read_header(&two).unwrap();
    assert_eq!(h1.sections, h2.sections);
}

#[test]
fn every_flipped_byte_is_caught() {
    let meta = ArrayMeta::new(DType::I16, vec![40, 50]);
    let data: Vec<u8> = (0..meta.len() as i32)
        .flat_map(|i| ((i % 100 - 50) as i16).to_le_bytes())
        .collect();
    let enc = encode_chunk("delta|bitshuffle|zstd", &meta, &data).unwrap();
    for i in 0..enc.len() {
        let mut bad = enc.clone();
        bad[i] ^= 0x10;
        assert!(decode_chunk(&bad).is_err(), "flip at {i} went unnoticed");
    }
    assert!(decode_chunk(&enc[..enc.len() - 1]).is_err());
}

#[test]
fn canonical_spec_is_stored_and_auto_is_resolved() {
    let meta = ArrayMeta::new(DType::F32, vec![10, 10]);
    let data = vec![0u8; meta.nbytes()];
    let enc = encode_chunk("auto", &meta, &data).unwrap();
    assert!(container::read_header(&enc)
        .unwrap()
        .spec
        .starts_with("chunked(block=1048576,codec=bitshuffle(block=262144)|zstd"));
    let enc = encode_chunk("zstd( level = 3 , block=1048576)|none", &meta, &data).unwrap();
    assert_eq!(container::read_header(&enc).unwrap().spec, "zstd|none");
}

fn err(spec: &str, meta: &ArrayMeta) -> String {
    let e = encode_chunk(spec, meta, &vec![0; meta.nbytes()]).unwrap_err();
    e.to_string()
}

#[test]
fn option_errors_name_the_option_and_the_form() {
    let m = ArrayMeta::new(DType::U16, vec![8, 8]);
    let e = err("zstd(lvl=3)", &m);
    assert!(
        e.contains("zstd:lvl") && e.contains("unknown option") && e.contains("level"),
        "{e}"
    );
    let e = err("zstd(level=99)", &m);
    assert!(
        e.contains("zstd:level") && e.contains("out of range") && e.contains("-7..=22"),
        "{e}"
    );
    let e = err("zstd(level=fast)", &m);
    assert!(
        e.contains("zstd:level") && e.contains("expected an integer"),
        "{e}"
    );
    let e = err("zstd(1,2,3,4)", &m);
    assert!(e.contains("too many positional"), "{e}");
    let e = err("bitshuffle(block=12)", &m);
    assert!(
        e.contains("bitshuffle:block") && e.contains("multiple of 8"),
        "{e}"
    );
    let e = err("zstd|delta", &m);
    assert!(e.contains("delta") && e.contains("opaque bytes"), "{e}");
    let e = err("zsdt", &m);
    assert!(
        e.contains("unknown codec `zsdt`") && e.contains("zstd"),
        "{e}"
    );
    assert!(matches!(
        encode_chunk("zstd(3", &m, &[0; 128]),
        Err(Error::Syntax { column: 7, .. })
    ));
}

/// Golden files: chunks written by earlier builds must keep decoding to the same data.
fn golden_input(dtype: DType) -> (ArrayMeta, Vec<u8>) {
    let meta = ArrayMeta::new(dtype, vec![3, 33, 35]);
    let data = (0..meta.nbytes())
        .map(|i| ((i * 31 / 7) % 11) as u8 * (i % 3 == 0) as u8)
        .collect();
    (meta, data)
}

const GOLDEN: &[(&str, DType, &str)] = &[
    ("v1_bitshuffle_lz4_u16", DType::U16, "bitshuffle|lz4"),
    ("v1_shuffle_zstd_f32", DType::F32, "shuffle|zstd(3)"),
    (
        "v1_delta_bitshuffle_zstd_i32",
        DType::I32,
        "delta|bitshuffle|zstd(level=5)",
    ),
    ("v1_bzip2_u8", DType::U8, "bzip2(level=9)"),
    ("v1_raw_f64", DType::F64, "none"),
];

#[test]
fn golden_files_keep_decoding() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("ROIBIN_BLESS").is_some();
    for (name, dtype, spec) in GOLDEN {
        let path = dir.join(format!("{name}.rbin"));
        let (meta, data) = golden_input(*dtype);
        // Blessing only adds missing files: existing ones are the format's history.
        if bless && !path.exists() {
            std::fs::write(&path, encode_chunk(spec, &meta, &data).unwrap()).unwrap();
        }
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ROIBIN_BLESS=1 writes it)", path.display()));
        assert_eq!(decode_chunk(&bytes).unwrap(), (meta, data), "{name}");
    }
}

/// Every registered codec, with its defaults (or the one option it requires), on frame-like
/// chunks of each dtype: lossless codecs give the bytes back, lossy ones hold their bound,
/// detector stages keep their promise, finders refuse to decode; nothing panics. A codec
/// registered without a line here fails the test, so each new one must say what it promises.
#[test]
fn every_codec_builds_encodes_and_decodes_with_its_defaults() {
    enum Promise {
        Lossless,
        /// |x - x'| ≤ bound for every element.
        Bound(&'static str, f64),
        /// Values stay within the chunk's [min, max] (means of bins, windows and fill 0).
        InRange(&'static str),
        /// A peak list: encoding works or is refused, decoding is refused.
        NoDecode,
    }
    use Promise::*;
    let promises = [
        ("auto", Lossless),
        ("bitshuffle", Lossless),
        ("bzip2", Lossless),
        ("chunked", Lossless),
        ("delta", Lossless),
        ("fast", Lossless),
        ("lz4", Lossless),
        ("none", Lossless),
        ("shuffle", Lossless),
        ("strong", Lossless),
        ("zstd", Lossless),
        ("sz", Bound("sz(abs=2)", 2.0)),
        ("zfp", Bound("zfp(accuracy=2)", 2.0)),
        ("bin", InRange("bin")),
        ("roi", InRange("roi")),
        ("roibin", InRange("roibin")),
        ("pf8", NoDecode),
        ("pfv3", NoDecode),
        ("dispersion", NoDecode),
        ("dispersion_extended", NoDecode),
        ("given", NoDecode),
    ];
    let names = roibin_compressors::codec_names();
    for name in &names {
        assert!(
            promises.iter().any(|(n, _)| n == name),
            "codec `{name}` has no promise in this test"
        );
    }
    for dtype in [DType::U16, DType::I32, DType::F32, DType::F64] {
        let meta = ArrayMeta::new(dtype, vec![2, 40, 36]);
        let data: Vec<u8> = (0..meta.len())
            .flat_map(|i| {
                let v = ((i * 7 % 251) & 0x3f) as f64;
                let mut b = vec![0u8; dtype.size()];
                roibin_compressors::detector::elems::put(v, dtype, &mut b);
                b
            })
            .collect();
        let orig = roibin_registry::metrics::to_f64(&data, dtype);
        let (lo, hi) = (0.0, 63.0);
        for (name, promise) in &promises {
            let spec = match promise {
                Bound(s, _) | InRange(s) => s,
                _ => name,
            };
            let enc = encode_chunk(spec, &meta, &data);
            match promise {
                NoDecode => {
                    let e = enc.and_then(|e| decode_chunk(&e)).unwrap_err().to_string();
                    assert!(e.contains("peak") || e.contains("given"), "`{name}`: {e}");
                    continue;
                }
                // zfp takes floats and 32/64-bit integers only.
                Bound("zfp(accuracy=2)", _) if dtype == DType::U16 => {
                    assert!(enc.is_err(), "zfp took u16");
                    continue;
                }
                _ => {}
            }
            let enc = enc.unwrap_or_else(|e| panic!("`{spec}` on {meta}: {e}"));
            let (m, back) =
                decode_chunk(&enc).unwrap_or_else(|e| panic!("`{spec}` on {meta}: {e}"));
            assert_eq!(m, meta, "`{spec}`");
            let got = roibin_registry::metrics::to_f64(&back, dtype);
            match promise {
                Lossless => assert_eq!(back, data, "`{spec}` on {meta} is not lossless"),
                Bound(_, b) => {
                    for (x, y) in orig.iter().zip(&got) {
                        assert!((x - y).abs() <= *b, "`{spec}` on {meta}: {x} -> {y}");
                    }
                }
                InRange(_) => {
                    for y in &got {
                        assert!(
                            *y >= lo - 1e-9 && *y <= hi + 1e-9,
                            "`{spec}` on {meta}: {y}"
                        );
                    }
                }
                NoDecode => unreachable!(),
            }
        }
    }
}
