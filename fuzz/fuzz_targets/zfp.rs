//! The zfp decoder on arbitrary payloads (past the container's checksum), for a few layouts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roibin_registry::{ArrayMeta, DType};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };
    let (dtype, shape) = match sel % 4 {
        0 => (DType::F32, vec![7, 9]),
        1 => (DType::F64, vec![3, 4, 5]),
        2 => (DType::I32, vec![33]),
        _ => (DType::I64, vec![2, 2, 3, 4]),
    };
    let meta = ArrayMeta::new(dtype, shape);
    let p = roibin_compressors::pipeline(&"zfp(accuracy=0.5)".parse().unwrap(), &meta).unwrap();
    let _ = p.decode(payload);
});
