//! The chunk grid of a dataset: chunk offsets, clipped edge extents, padding and cropping.

/// A dataset shape cut into chunks (edge chunks may be partial).
#[derive(Debug, Clone)]
pub struct Grid {
    pub shape: Vec<usize>,
    pub chunk: Vec<usize>,
}

impl Grid {
    pub fn new(shape: &[usize], chunk: &[usize]) -> Grid {
        Grid {
            shape: shape.to_vec(),
            chunk: chunk.to_vec(),
        }
    }

    fn per_dim(&self) -> Vec<usize> {
        self.shape
            .iter()
            .zip(&self.chunk)
            .map(|(s, c)| s.div_ceil(*c))
            .collect()
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.per_dim().iter().product()
    }

    /// True for a dataset with a zero-length dimension.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element offset of chunk `i` (C order over the grid).
    pub fn offset(&self, mut i: usize) -> Vec<usize> {
        let per = self.per_dim();
        let mut off = vec![0; per.len()];
        for d in (0..per.len()).rev() {
            off[d] = (i % per[d]) * self.chunk[d];
            i /= per[d];
        }
        off
    }

    /// The part of the chunk at `offset` that lies inside the dataset.
    pub fn extent(&self, offset: &[usize]) -> Vec<usize> {
        offset
            .iter()
            .zip(&self.chunk)
            .zip(&self.shape)
            .map(|((o, c), s)| (*c).min(s - o))
            .collect()
    }
}

/// Copy rows between a box of `extent` and a full chunk of `chunk` (both C order).
fn rows(extent: &[usize], chunk: &[usize], elem: usize, mut f: impl FnMut(usize, usize, usize)) {
    let rank = extent.len();
    let row = extent[rank - 1] * elem;
    let nrows: usize = extent[..rank - 1].iter().product();
    let mut idx = vec![0usize; rank.saturating_sub(1)];
    for _ in 0..nrows {
        let mut src = 0;
        let mut dst = 0;
        for d in 0..rank - 1 {
            src = src * extent[d] + idx[d];
            dst = dst * chunk[d] + idx[d];
        }
        f(src * row, dst * chunk[rank - 1] * elem, row);
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            if idx[d] < extent[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Place a clipped box into a zero-filled full chunk (a full box is returned as it is: no copy
/// of a 16 MB frame on the writer's one HDF5 thread).
pub fn pad(data: Vec<u8>, extent: &[usize], chunk: &[usize], elem: usize) -> Vec<u8> {
    if extent == chunk {
        return data;
    }
    let mut out = vec![0u8; chunk.iter().product::<usize>() * elem];
    rows(extent, chunk, elem, |s, d, n| {
        out[d..d + n].copy_from_slice(&data[s..s + n])
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_and_pad_crop() {
        let g = Grid::new(&[5, 7], &[2, 3]);
        assert_eq!(g.len(), 9);
        assert_eq!(g.offset(8), vec![4, 6]);
        assert_eq!(g.extent(&[4, 6]), vec![1, 1]);
        let data: Vec<u8> = (1..=6).collect(); // extent 2×3
        let p = pad(data, &[2, 3], &[3, 4], 1);
        assert_eq!(p, vec![1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
    }
}
