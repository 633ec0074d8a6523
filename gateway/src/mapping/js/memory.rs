//! The memory limit of a codec's runtime, kept by its allocator: QuickJS's own limit
//! cannot be told apart from a codec that throws `null`, which is what a runtime
//! out of memory throws when it cannot even build the error.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rquickjs::allocator::{Allocator, RustAllocator};

/// What a runtime's allocator has handed out, and whether it refused.
#[derive(Debug, Default)]
pub(super) struct Usage {
    held: AtomicUsize,
    refused: AtomicBool,
}

impl Usage {
    /// Whether an allocation was refused since the last `clear`.
    pub(super) fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    pub(super) fn clear(&self) {
        self.refused.store(false, Ordering::Relaxed);
    }
}

/// Rust's allocator, refusing what would take a runtime past `limit` bytes.
pub(super) struct Limited {
    inner: RustAllocator,
    limit: usize,
    usage: Arc<Usage>,
}

impl Limited {
    pub(super) fn new(limit: usize, usage: Arc<Usage>) -> Limited {
        Limited {
            inner: RustAllocator,
            limit,
            usage,
        }
    }

    /// Whether `more` bytes fit; records a refusal when not.
    fn fits(&self, more: usize) -> bool {
        let fits = self.usage.held.load(Ordering::Relaxed).saturating_add(more) <= self.limit;
        if !fits {
            self.usage.refused.store(true, Ordering::Relaxed);
        }
        fits
    }

    fn added(&self, ptr: *mut u8) -> *mut u8 {
        if !ptr.is_null() {
            // SAFETY: `ptr` was just allocated by `inner`.
            let size = unsafe { RustAllocator::usable_size(ptr) };
            self.usage.held.fetch_add(size, Ordering::Relaxed);
        }
        ptr
    }
}

// SAFETY: every call is forwarded to `RustAllocator`, which keeps the trait's
// rules; this only counts sizes and may return null before asking it.
unsafe impl Allocator for Limited {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.fits(size) {
            return std::ptr::null_mut();
        }
        let ptr = self.inner.alloc(size);
        self.added(ptr)
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        if !self.fits(count.saturating_mul(size)) {
            return std::ptr::null_mut();
        }
        let ptr = self.inner.calloc(count, size);
        self.added(ptr)
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: the caller hands back a pointer of this allocator.
        let size = unsafe { RustAllocator::usable_size(ptr) };
        self.usage.held.fetch_sub(size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { self.inner.dealloc(ptr) }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        // SAFETY: the caller hands back a pointer of this allocator.
        let old = unsafe { RustAllocator::usable_size(ptr) };
        if new_size > old && !self.fits(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        let new = unsafe { self.inner.realloc(ptr, new_size) };
        if !new.is_null() {
            self.usage.held.fetch_sub(old, Ordering::Relaxed);
            self.added(new);
        }
        new
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        // SAFETY: the caller hands in a pointer of this allocator.
        unsafe { RustAllocator::usable_size(ptr) }
    }
}
