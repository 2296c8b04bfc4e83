//! Interpolation lines four elements at a time with AVX2 (the encoder's).
//!
//! The same operations as the scalar rule, on four f64 lanes (no fused multiply-add), so the
//! same codes and values (tested against the SSE2 pairs and the scalar loops in
//! [`super::interp_row`]). On the finest level (gap 2) a lane set comes from one load of eight
//! consecutive float32, of which the even ones are the lanes, and new values are written back
//! by blending them into the even places of the eight they came from (the odd places keep what
//! they held). Along the last axis a group's loads reach the places the group before wrote,
//! and a load overlapping a recent wider store stalls (no store forwarding), so those values
//! wait for a batch of groups' loads. Coarser levels (gap 4 and more) load and store their
//! lanes one by one: AVX2 gather instructions were slower on an AMD CPU, and their lines load
//! only places none of their elements are.

use super::interp_row::Line;
use super::quant_avx2::Quant4;
use std::arch::x86_64::*;

/// Gap-2 values wait this many groups before they are written.
const BATCH: usize = 32;

/// Groups of four a line may take from its start: while every load stays inside the `n`
/// elements (`p - far` exists by the caller's contract).
fn groups(line: Line, n: usize) -> usize {
    let far = if line.cubic {
        3 * line.reach
    } else {
        line.reach
    };
    // What a group's loads span from their first element: eight float32 for gap 2, else up
    // to the fourth lane.
    let span = if line.gap == 2 { 8 } else { 3 * line.gap + 1 };
    if line.first + far + span > n {
        return 0;
    }
    (line.count / 4).min((n - line.first - far - span) / (4 * line.gap) + 1)
}

/// Four float32 lanes at `p`, `gap` apart.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes32(p: *const f32, gap: usize) -> __m128 {
    if gap == 2 {
        let evens = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        _mm256_castps256_ps128(_mm256_permutevar8x32_ps(_mm256_loadu_ps(p), evens))
    } else {
        _mm_setr_ps(*p, *p.add(gap), *p.add(2 * gap), *p.add(3 * gap))
    }
}

/// [`lanes32`] widened to f64.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes(p: *const f32, gap: usize) -> __m256d {
    _mm256_cvtps_pd(lanes32(p, gap))
}

/// The interpolation of the group of four at `p`: (-a + 9·l + 9·r − b) / 16 left to right
/// (cubic) or (l + r) / 2, as the scalar expression.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn predict(fp: *const f32, p: usize, line: Line) -> __m256d {
    let (reach, gap) = (line.reach, line.gap);
    let (l, r) = (lanes(fp.add(p - reach), gap), lanes(fp.add(p + reach), gap));
    if line.cubic {
        let (a, b) = (
            lanes(fp.add(p - 3 * reach), gap),
            lanes(fp.add(p + 3 * reach), gap),
        );
        let nine = _mm256_set1_pd(9.0);
        let s = _mm256_add_pd(
            _mm256_xor_pd(a, _mm256_set1_pd(-0.0)),
            _mm256_mul_pd(nine, l),
        );
        let s = _mm256_sub_pd(_mm256_add_pd(s, _mm256_mul_pd(nine, r)), b);
        _mm256_div_pd(s, _mm256_set1_pd(16.0))
    } else {
        _mm256_div_pd(_mm256_add_pd(l, r), _mm256_set1_pd(2.0))
    }
}

/// Blend four values into the even places of the eight float32 at `p`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn blend_evens(p: *mut f32, v: __m128) {
    let spread = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let new = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), spread);
    _mm256_storeu_ps(p, _mm256_blend_ps::<0b0101_0101>(_mm256_loadu_ps(p), new));
}

/// Where a line's new values go: straight for gaps over 2, after a batch's loads for gap 2.
struct WriteBack {
    line: Line,
    batch: [__m128; BATCH],
}

impl WriteBack {
    fn new(line: Line) -> WriteBack {
        // SAFETY: SSE is part of x86_64.
        WriteBack {
            line,
            batch: [unsafe { _mm_setzero_ps() }; BATCH],
        }
    }

    /// Group `g` of `groups` has the values `v`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn put(&mut self, fp: *mut f32, g: usize, groups: usize, v: __m128) {
        let Line { first, gap, .. } = self.line;
        if gap != 2 {
            let mut vals = [0f32; 4];
            _mm_storeu_ps(vals.as_mut_ptr(), v);
            for (j, x) in vals.into_iter().enumerate() {
                *fp.add(first + 4 * gap * g + gap * j) = x;
            }
            return;
        }
        self.batch[g % BATCH] = v;
        if g % BATCH == BATCH - 1 || g + 1 == groups {
            self.flush(fp, g);
        }
    }

    /// Write the gap-2 values waiting since the last full batch, up to group `g`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn flush(&mut self, fp: *mut f32, g: usize) {
        if self.line.gap != 2 {
            return;
        }
        let first = self.line.first + 8 * (g - g % BATCH);
        for (b, v) in self.batch[..=g % BATCH].iter().enumerate() {
            blend_evens(fp.add(first + 8 * b), *v);
        }
    }
}

/// Code `line`'s groups of four from its start (float32 `data`, reconstruction `f`, bound
/// `eb`): writes their codes to `codes`, returns how many elements it coded and whether it
/// escaped any.
///
/// # Safety
/// The CPU must have AVX2; the elements `reach` and (cubic) `3·reach` before every element
/// of the line exist.
#[target_feature(enable = "avx2")]
pub unsafe fn encode(
    data: &[u8],
    f: &mut [f32],
    line: Line,
    (eb, radius): (f64, u32),
    codes: &mut [u32],
) -> (usize, bool) {
    let groups = groups(line, f.len().min(data.len() / 4));
    assert!(
        codes.len() >= 4 * groups,
        "a code for every element of the groups"
    );
    let quant = Quant4::new(eb, radius);
    let escaped = match (line.gap == 2, line.cubic) {
        (true, true) => groups_as::<true, true>(data, f, line, &quant, codes, groups),
        (true, false) => groups_as::<true, false>(data, f, line, &quant, codes, groups),
        (false, true) => groups_as::<false, true>(data, f, line, &quant, codes, groups),
        (false, false) => groups_as::<false, false>(data, f, line, &quant, codes, groups),
    };
    (4 * groups, escaped)
}

/// [`encode`]'s loop over `groups` groups, compiled for each kind of line (gap 2 or more,
/// cubic or linear): with the kind a constant, the loop keeps no tests of it and fewer of its
/// values on the stack (the field's encode at bound 90 1–2% faster, 72.1 → 70.6 ms median).
///
/// # Safety
/// As [`encode`]'s, with `groups` from [`groups`] and `codes` holding `4 · groups` codes;
/// `line.gap == 2` exactly when `GAP2`, `line.cubic == CUBIC`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn groups_as<const GAP2: bool, const CUBIC: bool>(
    data: &[u8],
    f: &mut [f32],
    line: Line,
    quant: &Quant4,
    codes: &mut [u32],
    groups: usize,
) -> bool {
    let line = Line {
        gap: if GAP2 { 2 } else { line.gap },
        cubic: CUBIC,
        ..line
    };
    let (fp, dp) = (f.as_mut_ptr(), data.as_ptr() as *const f32);
    let mut out = WriteBack::new(line);
    let mut escaped = false;
    let ask_mask = line.ask_mask();
    for g in 0..groups {
        let p = line.first + 4 * line.gap * g;
        if ask_mask.is_some_and(|m| (4 * g) & m == 0) {
            super::interp_row::ask_next_line(fp, dp as *const u8, p, line);
        }
        // SAFETY (every pointer): inside the slices (`groups`).
        let pred = predict(fp, p, line);
        let coded = quant.code(lanes32(dp.add(p), line.gap), pred);
        escaped |= coded.escaped;
        // SAFETY: codes `4g..4g + 4` exist (the caller's contract).
        _mm_storeu_si128(codes.as_mut_ptr().add(4 * g) as *mut __m128i, coded.codes);
        out.put(fp, g, groups, coded.seen);
    }
    escaped
}
// The decoder keeps its lines one element at a time: four lanes there (the same blends, codes
// checked for escapes a group at a time) decoded the 256³ field at bound 90 no faster (116 vs
// 122 ms on one core): its time is in writing the reconstruction and the output, 128 MB.
