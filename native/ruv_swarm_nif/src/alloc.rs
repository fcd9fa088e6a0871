//! A global allocator that counts live bytes, so the engine's own memory
//! (per agent, per task) can be measured from Elixir.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);

pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

/// Bytes currently allocated by the engine's Rust code.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Hands the C heap's free pages back to the operating system.
///
/// The VM's own allocators keep their carriers, but glibc's `malloc` keeps
/// every page it ever used: loading code makes the JIT assemble each module
/// in `malloc`ed scratch buffers, and after boot (some 300 modules) about
/// 7 MB of freed scratch stays resident for nothing. `malloc_trim(0)`
/// releases the free pages anywhere in the heap, not only at its top.
/// Returns whether memory was released; `false` where the C library has no
/// such call.
#[rustler::nif(schedule = "DirtyCpu")]
fn engine_trim_heap() -> bool {
    trim_heap()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() -> bool {
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's
    // own arenas under their locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() -> bool {
    false
}
