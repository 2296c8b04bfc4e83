//! A file or a setting someone hands you cannot hang, exhaust or read your machine: crafted
//! chunks, specs naming files, FIFOs, filter positions, tuning files, through real h5py.

use roibin_h5tests::{client, ok, python, run, scratch, stdout};
use roibin_registry::container::{assemble, read_header, Header};
use roibin_registry::{ArrayMeta, DType};

/// Chunks the h5py script writes with `write_direct_chunk`.
fn forge(dir: &std::path::Path) {
    // 2^32 u8 zeros: 4096 zstd blocks of 1 MiB (each a ~20-byte frame), a few hundred kB.
    let mib = ArrayMeta::new(DType::U8, vec![1 << 20]);
    let one =
        roibin_compressors::encode_chunk("zstd(block=1048576)", &mib, &vec![0; 1 << 20]).unwrap();
    let h = read_header(&one).unwrap();
    let stream = h.sections[0];
    let frame = &stream[16..];
    let mut payload = (1u64 << 32).to_le_bytes().to_vec();
    payload.extend_from_slice(&(1u32 << 20).to_le_bytes());
    for _ in 0..4096 {
        payload.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    }
    for _ in 0..4096 {
        payload.extend_from_slice(frame);
    }
    let huge = assemble(&Header {
        meta: ArrayMeta::new(DType::U8, vec![4096, 1 << 20]),
        spec: "zstd(block=1048576)",
        sections: vec![&payload],
        ..h.clone()
    })
    .unwrap();
    assert!(huge.len() < 400_000, "{}", huge.len());
    std::fs::write(dir.join("huge.rbin"), huge).unwrap();
    // u16 [1,64,32]: the byte count of the dataset's u8 [1,64,64] chunks.
    let meta = ArrayMeta::new(DType::U16, vec![1, 64, 32]);
    let c = roibin_compressors::encode_chunk("zstd", &meta, &vec![1; meta.nbytes()]).unwrap();
    std::fs::write(dir.join("u16_64x32.rbin"), c).unwrap();
}

#[test]
fn crafted_files_and_settings_fail_fast_through_h5py() {
    let dir = scratch("hardening");
    let forged = dir.join("forged");
    std::fs::create_dir_all(&forged).unwrap();
    forge(&forged);
    let out = ok(python(
        "hardening.py",
        &[dir.to_str().unwrap(), forged.to_str().unwrap()],
    ));
    let text = stdout(&out);
    assert!(text.trim_end().ends_with("alive"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("variable-length"), "{err}");
}

#[test]
fn a_tuning_file_that_is_a_fifo_costs_a_warning_not_a_hung_write() {
    let dir = scratch("tuning-fifo");
    let fifo = dir.join("tuning.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut c = client("timeout");
    c.arg("60")
        .arg("python3")
        .arg("-c")
        .arg(
            "import h5py, numpy as np, sys\n\
             with h5py.File(sys.argv[1], 'w') as f:\n\
             \x20   d = f.create_dataset('d', data=np.arange(4096, dtype='u2').reshape(64, 64), chunks=(32, 64), compression=443)\n\
             \x20   assert all(d.id.get_chunk_info(i).filter_mask == 0 for i in range(2))\n\
             print('written')",
        )
        .arg(dir.join("t.h5"))
        .env("ROIBIN_TUNING", &fifo);
    let (code, out, err) = run(c);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("written") && err.contains("not a regular file"),
        "{out}\n{err}"
    );
}

#[test]
fn every_codec_filters_every_hard_chunk_through_h5py() {
    let dir = scratch("every-codec");
    let bin = roibin_h5tests::roibin_bin();
    let out = ok(python(
        "every_codec.py",
        &[dir.to_str().unwrap(), bin.to_str().unwrap()],
    ));
    let text = stdout(&out);
    assert!(text.contains("every chunk filtered"), "{text}");
}
