//! A probe that proves decoding is pure: after [`forbid_file_opens`], any attempt of this
//! process to open a file kills it with SIGSYS (seccomp). Tests and fuzz targets install it,
//! then decode crafted chunks: a decoder that tried to open a mask, a FIFO or `/dev/zero`
//! named in a chunk's spec would crash them.
//!
//! Linux only. Everything a decoder needs that is read from the system once (the core count)
//! is asked before the filter is installed.

/// Make every later `open`, `openat`, `openat2` and `creat` of any thread of this process
/// (those running now included) deliver SIGSYS. Irreversible for the process: use it in a
/// test binary or fuzz target of its own.
pub fn forbid_file_opens() -> std::io::Result<()> {
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
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
