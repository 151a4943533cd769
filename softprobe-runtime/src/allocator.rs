//! Gives the memory a large piece of work freed back to the system.
//!
//! A capture session holds every hop it recorded until its close writes the case; the close
//! then frees them all. glibc's allocator keeps freed memory in its arenas for reuse and
//! returns to the system only what lies at the top of a heap, so after a large capture the
//! runtime stayed resident at its peak: BENCHMARKS.md row 10 measured 1.04× the resident set
//! before the close *after* it, with the hops already freed. `malloc_trim(0)` walks every
//! arena and hands the free pages back (`madvise(MADV_DONTNEED)`). In
//! `tests/large_close.rs` (46 MiB of hop bodies recorded by two threads, debug build) the
//! process went from 64 MiB resident before the close to 100 MiB after it without the trim,
//! and to 10 MiB with it; row 10 in release (70,032 hops, a 248 MB case) went from 1.03× the
//! resident set before the close to 0.18× after it, the close taking 0.68 s per 100 MB.
//!
//! The walk locks each arena in turn, so it runs only after work that freed a lot
//! ([`LARGE`]): the close of a capture that wrote that much, and `softprobe scrub` after a
//! case of that size. Other allocators (musl, macOS, Windows) have no such call and do not
//! keep pages this way; there [`release_free_memory`] does nothing.

/// How much a piece of work must have written before [`release_after`] trims: below it the
/// freed memory is small enough for the allocator to keep for the next session.
pub const LARGE: u64 = 8 << 20;

/// Gives freed memory back to the system when the work that freed it wrote at least
/// [`LARGE`] bytes (a capture's case file, a scrubbed case). Returns whether memory was
/// given back.
pub fn release_after(written_bytes: u64) -> bool {
    written_bytes >= LARGE && release_free_memory()
}

/// Asks the allocator to give every free page of every arena back to the system (glibc's
/// `malloc_trim(0)`); returns whether it gave any back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and touches only the allocator's own state,
    // under the allocator's locks; it is MT-safe (malloc_trim(3)).
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Does nothing: this allocator has no call to give free pages back, nor keeps them as
/// glibc's does.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_work_is_not_trimmed() {
        assert!(!release_after(LARGE - 1));
    }
}
