//! The `roibin`, `roi` and `bin` decoders on arbitrary payloads, for a few layouts, built the
//! way readers build them (from a stored spec that names files, through `Pipeline::decoder`).
//! Decoding runs on a thread watched for file opens: any open attempt fails the target, so
//! the fuzzer checks purity as well as memory safety.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roibin_registry::purity::{watch_file_opens_on_this_thread, OPENS_SEEN};
use roibin_registry::{ArrayMeta, DType, DataKind, Pipeline};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

const SPECS: [&str; 4] = [
    r#"roibin(peaks=pf8(mask="/dev/zero",radius="/etc/passwd"),roi=3,background=bin(2,2)|sz(abs=1))"#,
    r#"roi(peaks=pfv3(mask="/dev/zero"),roi=2)"#,
    "roibin(roi=2,masked=keep,exact_above=100,background=bin(2,2)|zstd)",
    "bin(2,3)",
];

type Job = (usize, usize, Vec<u8>);

/// The decoding thread: watched for opens before it builds or decodes anything.
fn worker() -> &'static Mutex<(Sender<Job>, Receiver<()>)> {
    static W: OnceLock<Mutex<(Sender<Job>, Receiver<()>)>> = OnceLock::new();
    W.get_or_init(|| {
        let (jobs, rx) = channel::<Job>();
        let (done_tx, done) = channel();
        std::thread::spawn(move || {
            watch_file_opens_on_this_thread().expect("seccomp");
            let layouts = [
                ArrayMeta::new(DType::F32, vec![2, 16, 12]),
                ArrayMeta::new(DType::U16, vec![1, 2, 8, 10]),
                ArrayMeta::new(DType::I32, vec![9, 7]),
            ];
            for (spec, layout, payload) in rx {
                let meta = layouts[layout].clone();
                if let Ok(p) = Pipeline::decoder(&SPECS[spec].parse().unwrap(), &DataKind::Array(meta)) {
                    let _ = p.decode(&payload);
                }
                done_tx.send(()).unwrap();
            }
        });
        Mutex::new((jobs, done))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };
    let w = worker().lock().unwrap();
    w.0.send(((sel % 4) as usize, (sel / 4 % 3) as usize, payload.to_vec())).unwrap();
    w.1.recv().unwrap();
    assert_eq!(OPENS_SEEN.load(Ordering::SeqCst), 0, "a decoder tried to open a file");
});
