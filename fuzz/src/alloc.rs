//! A counting allocator: how many bytes the current thread has live, and the most it had
//! since the driver last asked. A target that allocates more than [`HARD_LIMIT`] on one
//! thread is stopped on the spot (its input written out first), so a run cannot take
//! the shared machine's memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Live bytes on one thread beyond which the process stops with a finding.
pub const HARD_LIMIT: isize = 1536 << 20;

pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

fn add(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
        if now > HARD_LIMIT && !REPORTING.with(|r| r.replace(true)) {
            crate::driver::report_and_abort(&format!(
                "unbounded memory: {} MiB live on one thread",
                now >> 20
            ));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Starts a new measurement on this thread: the peak becomes what is live now.
pub fn reset_peak() {
    let now = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(now));
}

/// Bytes allocated on this thread at the peak since [`reset_peak`], above what was live then.
pub fn peak_since(start: isize) -> isize {
    PEAK.with(Cell::get) - start
}

pub fn live() -> isize {
    LIVE.with(Cell::get)
}
