//! Stream positions handed out to concurrent writers, and the highest position below
//! which every write has finished.
//!
//! Writers to different rooms take positions N and N+1 and commit their batches in any
//! order. A reader that saw N+1 before N landed and then moved its token past N would
//! never see N, so readers only go up to [`Positions::visible`]: the end of the
//! contiguous run of finished positions.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a finished write asks to be woken: drained in position order once visible.
pub type Wake<T> = Option<T>;

pub struct Positions<T> {
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    allocated: u64,
    visible: u64,
    /// Positions handed out and not yet visible: `None` while the write is in flight,
    /// `Some(wake)` once it finished but an earlier position is still in flight.
    pending: BTreeMap<u64, Option<Wake<T>>>,
}

impl<T> Positions<T> {
    /// Resumes after `last`, the highest position already stored.
    pub fn new(last: u64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                allocated: last,
                visible: last,
                pending: BTreeMap::new(),
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next position. The caller must pass it to [`Positions::finish`] whether
    /// or not its write succeeded; [`Ticket`] does so on drop.
    pub fn allocate(&self) -> u64 {
        let mut inner = self.inner();
        inner.allocated += 1;
        let pos = inner.allocated;
        inner.pending.insert(pos, None);
        pos
    }

    /// Marks `pos` finished and returns the wakes of every position that has just become
    /// visible, in order.
    pub fn finish(&self, pos: u64, wake: Wake<T>) -> Vec<T> {
        let mut inner = self.inner();
        if let Some(slot) = inner.pending.get_mut(&pos) {
            *slot = Some(wake);
        }
        let mut woken = Vec::new();
        while let Some(entry) = inner.pending.first_entry() {
            if entry.get().is_none() {
                break;
            }
            let (pos, wake) = entry.remove_entry();
            inner.visible = pos;
            if let Some(Some(wake)) = wake {
                woken.push(wake);
            }
        }
        woken
    }

    /// Every position up to here has been written (or abandoned).
    pub fn visible(&self) -> u64 {
        self.inner().visible
    }

    /// The highest position handed out so far.
    pub fn allocated(&self) -> u64 {
        self.inner().allocated
    }
}

/// A read-only view of a stream's positions, for parts that only need to know how far
/// it got (the unread counts, which the pushers' workers also use).
pub trait Watermarks: Send + Sync {
    /// [`Positions::visible`].
    fn visible(&self) -> u64;
    /// [`Positions::allocated`].
    fn allocated(&self) -> u64;
}

impl<T: Send> Watermarks for Positions<T> {
    fn visible(&self) -> u64 {
        Positions::visible(self)
    }

    fn allocated(&self) -> u64 {
        Positions::allocated(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_finishes_become_visible_together() {
        let positions = Positions::<&str>::new(10);
        let a = positions.allocate();
        let b = positions.allocate();
        assert_eq!((a, b), (11, 12));
        assert!(positions.finish(b, Some("b")).is_empty());
        assert_eq!(positions.visible(), 10);
        assert_eq!(positions.finish(a, Some("a")), vec!["a", "b"]);
        assert_eq!(positions.visible(), 12);
    }

    #[test]
    fn an_abandoned_position_does_not_block_later_ones() {
        let positions = Positions::<u8>::new(0);
        let a = positions.allocate();
        let b = positions.allocate();
        positions.finish(a, None);
        assert_eq!(positions.finish(b, Some(2)), vec![2]);
        assert_eq!(positions.visible(), 2);
    }
}
