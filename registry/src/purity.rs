//! A probe that proves decoding is pure: after [`forbid_file_opens`], any attempt of this
//! process to open a file kills it with SIGSYS (seccomp). Tests and fuzz targets install it,
//! then decode crafted chunks: a decoder that tried to open a mask, a FIFO or `/dev/zero`
//! named in a chunk's spec would crash them.
//!
//! Linux only. Everything a decoder needs that is read from the system once (the core count)
//! is asked before the filter is installed.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Make every later `open`, `openat`, `openat2` and `creat` of any thread of this process
/// (those running now included) deliver SIGSYS. Irreversible for the process: use it in a
/// test binary or fuzz target of its own.
pub fn forbid_file_opens() -> std::io::Result<()> {
    install(true)
}

/// Opens attempted on watched threads (see [`watch_file_opens_on_this_thread`]).
pub static OPENS_SEEN: AtomicUsize = AtomicUsize::new(0);

/// From now on, an open on this thread (or a thread it starts later) fails with EPERM and
/// counts in [`OPENS_SEEN`]; other threads are untouched. For fuzz targets: the fuzzer's own
/// thread keeps writing its corpus, the decoding thread is watched, and the target fails when
/// the count moves. x86_64 and aarch64.
pub fn watch_file_opens_on_this_thread() -> std::io::Result<()> {
    extern "C" fn on_sigsys(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        OPENS_SEEN.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the kernel passes the interrupted thread's ucontext; setting the syscall's
        // return register makes the trapped open return -EPERM when the handler returns.
        unsafe {
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
    // SAFETY: a zeroed sigaction with SA_SIGINFO and a handler of the matching signature.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    install(false)
}

/// The filter: opens trap (SIGSYS); `all_threads` applies it to every thread (TSYNC).
fn install(all_threads: bool) -> std::io::Result<()> {
    // Answers read from files, asked now: the core count reads cgroup files.
    crate::threads::cores();
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
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            if all_threads {
                libc::SECCOMP_FILTER_FLAG_TSYNC
            } else {
                0
            },
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
            std::fs::File::open("/etc/hostname").map(|_| ())
        })
        .join()
        .unwrap();
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert_eq!(OPENS_SEEN.load(Ordering::SeqCst), before + 1);
        // Other threads are untouched.
        assert!(std::fs::metadata("/").is_ok());
        std::fs::File::open("/proc/self/status").unwrap();
    }
}
