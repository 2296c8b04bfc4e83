//! Property: on roibin chunks, every linear signal computed in the compressed domain (bins +
//! exact pixels) equals decode-then-reduce to floating-point summation tolerance, whatever
//! the frame, dtype, binning, windows, pre-processing and algorithm.

use proptest::prelude::*;
use roibin_registry::{ArrayMeta, DType};
use roibin_stxm::source::{ChunkBytes, ChunkCodec, Info, Item, Source};
use roibin_stxm::{Request, RunOptions};
use std::ops::Range;

/// Frames held as roibin chunks in memory, `per` frames per chunk (as the panels of one
/// chunk frame when `per` > 1: a 4-D dataset chunked over several scan columns).
struct Chunks {
    info: Info,
    chunks: Vec<Vec<u8>>,
    per: usize,
}

impl Source for Chunks {
    fn info(&self) -> &Info {
        &self.info
    }
    fn read(&mut self, frames: Range<usize>) -> Vec<Item> {
        let per = self.per;
        (frames.start / per..frames.end.div_ceil(per))
            .map(|c| Item::Chunk {
                first: c * per,
                slots: per,
                want: frames.start.max(c * per)..frames.end.min((c + 1) * per),
                codec: ChunkCodec::Roibin,
                bytes: ChunkBytes::Loaded(self.chunks[c].clone()),
            })
            .collect()
    }
}

fn frame(h: usize, w: usize, dtype: DType, seed: u64, peaks: &[(usize, usize)]) -> Vec<u8> {
    let mut x = seed | 1;
    (0..h * w)
        .flat_map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = 20.0 + (x % 9) as f64;
            if peaks.iter().any(|&(py, px)| py * w + px == i) {
                v += 3000.0;
            }
            if i % 97 == 5 {
                v = -1.0; // a sentinel (integers) / a negative value (floats)
            }
            match dtype {
                DType::U16 => (if v < 0.0 { u16::MAX } else { v as u16 })
                    .to_le_bytes()
                    .to_vec(),
                DType::U32 => (if v < 0.0 { u32::MAX } else { v as u32 })
                    .to_le_bytes()
                    .to_vec(),
                _ => (if v < 0.0 { f32::NAN } else { v as f32 + 0.25 })
                    .to_le_bytes()
                    .to_vec(),
            }
        })
        .collect()
}

fn requests(h: usize, w: usize) -> Vec<String> {
    vec![
        "algo=brightfield&signal=Itot".into(),
        "algo=brightfield&signal=comh&binning=2,3".into(),
        format!("algo=brightfield&signal=comv&roi=2,1,{},{}", w - 5, h - 3),
        format!(
            "algo=polarroi&polarroi={},{};2,{};-45,120",
            w / 2,
            h / 3,
            h / 2
        ),
        format!(
            "algo=radial&radial={},{};0,{};7&binning=1,2",
            w / 2,
            h / 2,
            h
        ),
        "algo=gridroi&signal=comh&gridroi=1,1,5,4;2,2;7,6".into(),
        "algo=brightfield&signal=dpc&empty=0&difference=1".into(),
        // Weights that are not 0/1 (the empty beam's) inside a ROI, without labels: the
        // per-pixel path, with window pixels outside the ROI's columns and rows.
        format!(
            "algo=brightfield&signal=comh&roi=3,2,{},{}&empty=0",
            w - 7,
            h - 5
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn compressed_domain_equals_decode_then_reduce(
        h in 16usize..40,
        w in 16usize..40,
        dt in 0usize..3,
        fr in 1usize..4,
        fc in 1usize..5,
        roi in 1usize..4,
        lossy in any::<bool>(),
        masked in any::<bool>(),
        per in 1usize..4,
        seed in any::<u64>(),
    ) {
        // A pixel mask (the requests' default `mask=auto` reads it): half a column, a peak's
        // pixel and a few more; few enough to be a 0/1 mask on most frames, too many on narrow
        // ones (then general weights), so both bin-coefficient forms are checked.
        let mask = masked.then(|| {
            let mut m = vec![false; h * w];
            (0..h / 2).for_each(|y| m[y * w + w / 2] = true);
            for (y, x) in [(h / 2, w / 3 + 2), (0, 0), (h - 1, w - 1), (5, 7)] {
                m[y * w + x] = true;
            }
            m
        });
        let dtype = [DType::U16, DType::U32, DType::F32][dt];
        let bg = if lossy { format!("bin({fr},{fc})|sz(abs=2)") } else { format!("bin({fr},{fc})") };
        let spec = format!("roibin(peaks=pf8(snr=3,min_pix=1,adc=100),roi={roi},background={bg})");
        // `per` frames a chunk: as its panels ([1, per, h, w]) when more than one.
        let meta = ArrayMeta::new(dtype, if per == 1 { vec![1, h, w] } else { vec![1, per, h, w] });
        // Frames 0 and 1 serve as empty and difference images, outside the scan (a frame minus
        // itself sums to rounding noise, whose centre of mass means nothing).
        let n = 12;
        let chunks: Vec<Vec<u8>> = (0..n / per)
            .map(|c| {
                let frames: Vec<u8> = (c * per..(c + 1) * per)
                    .flat_map(|i| {
                        let peaks = [(h / 2, w / 3 + i), (3 + i, w - 4), (h - 2, 1)];
                        frame(h, w, dtype, seed ^ i as u64, &peaks)
                    })
                    .collect();
                roibin_compressors::encode_chunk(&spec, &meta, &frames).unwrap()
            })
            .collect();
        // A chunk the container stored raw (compression did not pay) decodes instead.
        let encoded_scan = (2..8)
            .filter(|&i| !roibin_registry::container::read_header(&chunks[i / per]).unwrap().raw)
            .count();
        for q in requests(h, w) {
            let req = Request::from_query(&format!("{q}&scan=2x3&first=2")).unwrap();
            let mut maps = vec![];
            for decode in [false, true] {
                let mut src = Chunks {
                    info: Info { frames: n, height: h, width: w, dtype, scan: None, mask: mask.clone(), identity: String::new(), read_path: String::new() },
                    chunks: chunks.clone(),
                    per,
                };
                let r = roibin_stxm::run(&req, &mut src, &RunOptions { decode, ..RunOptions::default() }).unwrap();
                prop_assert!(r.failed.is_empty(), "{:?}", r.failed);
                prop_assert_eq!(r.stats.compressed_domain_frames, if decode { 0 } else { encoded_scan });
                maps.push(r.values);
            }
            let scale = maps[1].iter().filter(|v| v.is_finite()).fold(1e-300f64, |m, v| m.max(v.abs()));
            for (a, b) in maps[0].iter().zip(&maps[1]) {
                prop_assert!(
                    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * scale,
                    "{q} {spec} {dtype}: {a} vs {b}"
                );
            }
        }
    }
}

/// `hits` and `bragg` of chunks holding 2 or 3 scan frames as panels equal those of one frame
/// per chunk: each scan frame gets the windows centred in its panel and their pixels in it.
/// pfv3 works panel by panel, so it finds the same peaks in a panel as in the frame alone.
#[test]
fn hits_and_bragg_split_chunks_by_panel() {
    let (h, w, dtype, n) = (24, 30, DType::U16, 12);
    let spec = "roibin(peaks=pfv3,roi=2,background=bin(2,2))";
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            // Frame 5 has no peak; the others one to three.
            let centres = [(h / 2, w / 3 + i), (3 + i, w - 5), (h - 5, 3)];
            let k = if i == 5 { 0 } else { 1 + i % 3 };
            // 2×2 spots.
            let spots: Vec<(usize, usize)> = centres[..k]
                .iter()
                .flat_map(|&(y, x)| [(y, x), (y + 1, x), (y, x + 1), (y + 1, x + 1)])
                .collect();
            frame(h, w, dtype, 7 ^ i as u64, &spots)
        })
        .collect();
    let run = |spec: &str, per: usize, algo: &str| {
        let meta = ArrayMeta::new(
            dtype,
            if per == 1 {
                vec![1, h, w]
            } else {
                vec![1, per, h, w]
            },
        );
        let chunks = (0..n / per)
            .map(|c| {
                roibin_compressors::encode_chunk(
                    spec,
                    &meta,
                    &frames[c * per..(c + 1) * per].concat(),
                )
                .unwrap()
            })
            .collect();
        let mut src = Chunks {
            info: Info {
                frames: n,
                height: h,
                width: w,
                dtype,
                scan: None,
                mask: None,
                identity: String::new(),
                read_path: String::new(),
            },
            chunks,
            per,
        };
        let req = Request::from_query(&format!("algo={algo}&scan=3x4")).unwrap();
        roibin_stxm::run(&req, &mut src, &RunOptions::default()).unwrap()
    };
    let maps = |per: usize, algo: &str| {
        let r = run(spec, per, algo);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        r.values
    };
    let hits = maps(1, "hits");
    assert_eq!(hits[5], 0.0);
    assert!(
        hits.iter().enumerate().all(|(i, &v)| i == 5 || v >= 1.0),
        "{hits:?}"
    );
    for per in [2, 3] {
        assert_eq!(maps(per, "hits"), hits, "hits, {per} frames a chunk");
        assert_eq!(
            maps(per, "bragg"),
            maps(1, "bragg"),
            "bragg, {per} frames a chunk"
        );
    }
}
