//! Decoding is pure: ROIBIN chunks decode after their mask, radius and spec files are gone,
//! and chunks whose stored spec names a FIFO, `/dev/zero` or `/etc/passwd` decode without
//! opening them. The proof is a seccomp filter: once installed, any `open` of this process
//! fails and is counted with its path (so this file holds one test, alone in its process).

use roibin_compressors::detector::peaks::{write_npy, NpyData};
use roibin_compressors::{decode_chunk, encode_chunk};
use roibin_registry::container::{assemble, read_header, Header};
use roibin_registry::{ArrayMeta, DType};

mod common;

#[test]
fn roibin_chunks_decode_without_their_files_and_open_nothing() {
    let dir = std::env::temp_dir().join(format!("roibin-purity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (v, _) = common::frame(2, 7);
    let meta = ArrayMeta::new(DType::F32, vec![1, 128, 96]);
    let data = common::bytes(&v);
    let (mask, radius, spec_file) = (dir.join("m.npy"), dir.join("r.npy"), dir.join("spec.txt"));
    let mut m = vec![1u8; 128 * 96];
    m[5 * 96 + 7] = 0;
    write_npy(&mask, &[128, 96], NpyData::U8(&m)).unwrap();
    let r: Vec<f32> = (0..128 * 96).map(|i| (i % 96) as f32).collect();
    write_npy(&radius, &[2, 64, 96], NpyData::F32(&r)).unwrap();
    let spec = format!(
        r#"roibin(peaks=pf8(mask="{}",radius="{}"),panel_rows=64,masked=keep,background=bin(2,2)|sz(abs=2))"#,
        mask.display(),
        radius.display()
    );
    std::fs::write(&spec_file, &spec).unwrap();
    let text = roibin_registry::spec::spec_text(&format!("@{}", spec_file.display())).unwrap();
    let chunk = encode_chunk(&text, &meta, &data).unwrap();
    let h = read_header(&chunk).unwrap();
    assert!(!h.raw && h.spec.contains("m.npy"), "{}", h.spec);
    let (_, expect) = decode_chunk(&chunk).unwrap();

    // The same chunk with its spec naming things a reader must never open.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let bads = [
        fifo.to_str().unwrap().to_string(),
        "/dev/zero".into(),
        "/etc/passwd".into(),
    ];
    let forged: Vec<Vec<u8>> = bads
        .iter()
        .map(|bad| {
            let s = h
                .spec
                .replace(mask.to_str().unwrap(), bad)
                .replace(radius.to_str().unwrap(), bad);
            assemble(&Header {
                spec: &s,
                ..h.clone()
            })
            .unwrap()
        })
        .collect();

    for f in [&mask, &radius, &spec_file, &fifo] {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::remove_dir(&dir).unwrap();
    // A backtrace would read the binary; keep a failure's report to one line.
    std::panic::set_hook(Box::new(|p| eprintln!("{p}")));
    roibin_registry::purity::forbid_file_opens().unwrap();

    assert_eq!(decode_chunk(&chunk).unwrap().1, expect);
    for (f, bad) in forged.iter().zip(&bads) {
        assert!(read_header(f).unwrap().spec.contains(bad.as_str()));
        assert_eq!(decode_chunk(f).unwrap().1, expect, "spec naming {bad}");
    }
    assert_eq!(
        roibin_registry::purity::first_open(),
        None,
        "decoding tried to open a file"
    );
}
