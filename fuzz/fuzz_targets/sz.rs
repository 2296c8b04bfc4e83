//! The sz decoder on arbitrary payloads (past the container's checksum), for a few layouts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roibin_registry::{ArrayMeta, DType};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };
    let (dtype, shape) = match sel % 4 {
        0 => (DType::F32, vec![7, 9]),
        1 => (DType::F64, vec![3, 4, 5]),
        2 => (DType::U16, vec![33]),
        _ => (DType::I32, vec![2, 2, 3, 4]),
    };
    let meta = ArrayMeta::new(dtype, shape);
    let p = roibin_compressors::pipeline(&"sz(abs=1)".parse().unwrap(), &meta).unwrap();
    let _ = p.decode(payload);
});
