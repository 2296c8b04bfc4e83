//! Buffers a codec keeps between chunks.
//!
//! A fresh frame-sized buffer costs a page fault every 4 KB each time it is first written
//! (and glibc returns large freed blocks to the kernel), a tenth or more of a frame's encode;
//! a buffer handed back and taken again keeps its pages. Owned by the codec instance that
//! uses them, so they live as long as it does and nothing is shared between codecs.

use std::sync::Mutex;

/// A pool of buffers of `T`, at most [`Spare::CAP`] of them kept.
#[derive(Debug, Default)]
pub struct Spare<T>(Mutex<Vec<Vec<T>>>);

impl<T> Spare<T> {
    /// More buffers than frames are ever worked on at once; a backstop, since each user takes
    /// one before it hands one back.
    pub const CAP: usize = 64;

    /// A kept buffer as it was handed back (its contents are the giver's to promise), or a
    /// new, empty one.
    pub fn take(&self) -> Vec<T> {
        self.0
            .lock()
            .map(|mut s| s.pop())
            .unwrap_or(None)
            .unwrap_or_default()
    }

    /// Keep `v` for a later [`Spare::take`].
    pub fn give(&self, v: Vec<T>) {
        if let Ok(mut s) = self.0.lock() {
            if s.len() < Self::CAP {
                s.push(v);
            }
        }
    }
}
