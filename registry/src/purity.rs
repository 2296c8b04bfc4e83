//! A probe that proves decoding is pure: after [`forbid_file_opens`] (every thread) or
//! [`watch_file_opens_on_this_thread`], any attempt to open a file fails with EPERM and is
//! counted in [`OPENS_SEEN`], its path kept ([`first_open`]). Tests and fuzz targets decode
//! crafted chunks under it: a decoder that tried to open a mask, a FIFO or `/dev/zero` named in
//! a chunk's spec shows up there.
//!
//! Linux (x86_64, aarch64) only. The C library's own lazy reads (glibc's malloc reads
//! `/proc/sys/vm/overcommit_memory` the first time a thread arena shrinks) are refused but not
//! counted: they are not the decoder's, and the library copes with the refusal.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// Opens attempted under the probe (the C library's own excepted).
pub static OPENS_SEEN: AtomicUsize = AtomicUsize::new(0);

const PATH_CAP: usize = 256;
static FIRST_PATH: [AtomicU8; PATH_CAP] = [const { AtomicU8::new(0) }; PATH_CAP];
static FIRST_TAKEN: AtomicBool = AtomicBool::new(false);

/// Paths the C library opens by itself, at times no caller controls.
const LIBC_OWN: &[&[u8]] = &[b"/proc/sys/vm/overcommit_memory"];

/// The path of the first counted open attempt, if any.
pub fn first_open() -> Option<String> {
    if OPENS_SEEN.load(Ordering::SeqCst) == 0 {
        return None;
    }
    let bytes: Vec<u8> = FIRST_PATH
        .iter()
        .map(|b| b.load(Ordering::SeqCst))
        .take_while(|&b| b != 0)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Make every later open of every thread of this process (those running now included) fail
/// with EPERM and count. Irreversible for the process: use it in a test binary of its own.
pub fn forbid_file_opens() -> std::io::Result<()> {
    install(true)
}

/// From now on, an open on this thread (or a thread it starts later) fails with EPERM and
/// counts; other threads are untouched. For fuzz targets: the fuzzer's own thread keeps
/// writing its corpus, the decoding thread is watched.
pub fn watch_file_opens_on_this_thread() -> std::io::Result<()> {
    install(false)
}

/// The path argument of the trapped syscall, from the interrupted registers.
///
/// # Safety
/// `ctx` must be the ucontext the kernel passed to a SIGSYS handler for a seccomp trap.
unsafe fn trapped_path(ctx: *mut libc::c_void) -> *const u8 {
    let uc = ctx as *mut libc::ucontext_t;
    #[cfg(target_arch = "x86_64")]
    {
        let g = &(*uc).uc_mcontext.gregs;
        let nr = g[libc::REG_RAX as usize];
        if nr == libc::SYS_open || nr == libc::SYS_creat {
            g[libc::REG_RDI as usize] as *const u8
        } else {
            g[libc::REG_RSI as usize] as *const u8
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        (*uc).uc_mcontext.regs[1] as *const u8
    }
}

extern "C" fn on_sigsys(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes the interrupted thread's ucontext; the path pointer is the
    // one the caller handed to open (read up to PATH_CAP bytes or its NUL); setting the
    // return register makes the trapped call return -EPERM when the handler returns.
    unsafe {
        let p = trapped_path(ctx);
        let mut path = [0u8; PATH_CAP];
        let mut n = 0;
        if !p.is_null() {
            while n < PATH_CAP - 1 {
                let b = *p.add(n);
                if b == 0 {
                    break;
                }
                path[n] = b;
                n += 1;
            }
        }
        let own = LIBC_OWN.iter().any(|o| &path[..n] == *o);
        if !own {
            OPENS_SEEN.fetch_add(1, Ordering::SeqCst);
            if !FIRST_TAKEN.swap(true, Ordering::SeqCst) {
                for (slot, &b) in FIRST_PATH.iter().zip(&path[..n]) {
                    slot.store(b, Ordering::SeqCst);
                }
            }
        }
        let uc = ctx as *mut libc::ucontext_t;
        #[cfg(target_arch = "x86_64")]
        {
            (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = -(libc::EPERM as i64);
        }
        #[cfg(target_arch = "aarch64")]
        {
            (*uc).uc_mcontext.regs[0] = (-(libc::EPERM as i64)) as u64;
        }
    }
}

/// The handler and the filter: opens trap (SIGSYS); `all_threads` applies it to every thread
/// (TSYNC).
fn install(all_threads: bool) -> std::io::Result<()> {
    // Answers read from files, asked now: the core count reads cgroup files.
    crate::threads::cores();
    // SAFETY: a zeroed sigaction with SA_SIGINFO and a handler of the matching signature.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let mut nrs: Vec<u32> = vec![libc::SYS_openat as u32, 437 /* openat2 */];
    #[cfg(target_arch = "x86_64")]
    nrs.extend([libc::SYS_open as u32, libc::SYS_creat as u32]);
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    // Load the syscall number (offset 0 of seccomp_data); for each forbidden one, jump to the
    // trap at the end; otherwise allow.
    let mut prog = vec![stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0)];
    let n = nrs.len();
    for (i, &nr) in nrs.iter().enumerate() {
        prog.push(libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: (n - i) as u8, // to the trap: skip the remaining tests and the allow
            jf: 0,
            k: nr,
        });
    }
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_TRAP));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers; seccomp() reads `fprog`, whose filter
    // points at `prog`, both alive for the call (the kernel copies the program).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = if all_threads {
            libc::SECCOMP_FILTER_FLAG_TSYNC
        } else {
            0
        };
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_thread_cannot_open_and_is_counted() {
        let before = OPENS_SEEN.load(Ordering::SeqCst);
        let r = std::thread::spawn(|| {
            watch_file_opens_on_this_thread().unwrap();
            let own = std::fs::File::open("/proc/sys/vm/overcommit_memory").map(|_| ());
            (own, std::fs::File::open("/etc/hostname").map(|_| ()))
        })
        .join()
        .unwrap();
        // The C library's own read is refused, not counted; any other open is both.
        assert_eq!(r.0.unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert_eq!(r.1.unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert_eq!(OPENS_SEEN.load(Ordering::SeqCst), before + 1);
        assert_eq!(first_open().as_deref(), Some("/etc/hostname"));
        // Other threads are untouched.
        std::fs::File::open("/proc/self/status").unwrap();
    }
}
