//! A hint to the CPU to fetch an element into its caches before a loop reaches it: for loops
//! that visit scattered places of frame-sized arrays, which the hardware prefetcher cannot
//! follow.

/// Ask the CPU to fetch `s[i]` into its caches (nothing when `i` is out of bounds, or on other
/// architectures).
#[inline(always)]
pub fn prefetch<T>(s: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(at) = s.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint that never faults, and `at` points into a live slice
        // anyway (taken with `get`).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at as *const T as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, i);
}
