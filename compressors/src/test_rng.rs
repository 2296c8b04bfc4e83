//! A seeded xorshift generator for unit tests: the same numbers on every run and machine.

/// Successive 64-bit values of xorshift64 from `seed` (non-zero).
pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
