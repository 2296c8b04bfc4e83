//! Any byte string handed to the chunk decoder gives a result or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roibin_compressors::decode_chunk(data);
});
