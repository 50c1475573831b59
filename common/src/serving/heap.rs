//! Giving the heap a burst of connections left behind back to the kernel.
//!
//! Thousands of idle connections cost a server a few kilobytes each while
//! they are open (a task, buffers, the socket's registration). When they
//! close, glibc's malloc keeps the freed chunks in its arenas for reuse and
//! returns memory to the kernel only from the top of each heap, so the
//! process's resident memory stays where the attack left it: 5,000 idle
//! partial requests took the tracker from 4.6 MB to 78.6 MB, and it stayed
//! there. Nothing leaked, but a server would keep for good whatever an
//! attacker once made it allocate. `malloc_trim(0)` also releases every
//! whole free page inside the heaps (with `madvise`), which gives it back.
//!
//! [`keep_trimmed`] starts a thread that, once a second, reads how much the
//! heap holds free (`mallinfo2`) and trims when that has grown by [`SLACK`]
//! since the last look ([`Trimmer`], pure): a few times as a burst's
//! connections close, not every second after them, and seldom while a
//! server only churns through its usual buffers. A look is one `mallinfo2`
//! (it walks malloc's free lists, locking each arena in turn); a trim of
//! 3 MB of free heap took about half a millisecond in `peer serve` here.
//! With another allocator or libc, both are no-ops.

use std::time::Duration;

/// Growth of the heap's free bytes, since the last look, that makes a trim
/// worth it. Small: the connections of a burst close over several seconds,
/// and what is left untrimmed stays resident; a trim that releases little
/// costs a few page faults when the memory is used again.
pub const SLACK: usize = 256 << 10;
/// How often the thread looks.
pub const PERIOD: Duration = Duration::from_secs(1);

/// When to trim, from the free bytes the heap reports at each look.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// Free bytes at the last trim, lowered as the heap reuses them.
    baseline: usize,
}

impl Trimmer {
    /// Whether to trim now, with `free` bytes free in the heap.
    pub fn should_trim(&mut self, free: usize) -> bool {
        if free >= self.baseline.saturating_add(SLACK) {
            self.baseline = free;
            true
        } else {
            // Free memory reused (and faulted in again) re-arms the trim
            // for when it is freed once more.
            self.baseline = self.baseline.min(free);
            false
        }
    }
}

/// Starts the trimming thread (once per process; later calls do nothing).
pub fn keep_trimmed() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    if !os::AVAILABLE {
        return;
    }
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("heap-trim".into())
            .spawn(|| {
                let mut trimmer = Trimmer::default();
                loop {
                    std::thread::sleep(PERIOD);
                    let free = os::free_bytes();
                    if trimmer.should_trim(free) {
                        os::trim();
                        tracing::debug!(free, "gave the heap's free pages back to the kernel");
                    }
                }
            });
        // Without the thread the server only keeps more memory.
        drop(spawned);
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod os {
    pub const AVAILABLE: bool = true;

    /// Bytes in free chunks of every arena (not counting the chunks in
    /// malloc's per-thread caches, which it counts as in use).
    pub fn free_bytes() -> usize {
        // SAFETY: `mallinfo2` only reads malloc's statistics, locking each
        // arena in turn; glibc has had it since 2.33.
        unsafe { libc::mallinfo2() }.fordblks
    }

    /// Returns every whole free page of every arena to the kernel.
    pub fn trim() {
        // SAFETY: `malloc_trim` takes each arena's lock and `madvise`s only
        // pages inside free chunks; it is safe to call from any thread.
        unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod os {
    pub const AVAILABLE: bool = false;

    pub fn free_bytes() -> usize {
        0
    }

    pub fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_as_a_burst_settles_and_again_after_reuse() {
        let mut trimmer = Trimmer::default();
        // A server's usual churn: under the slack, no trim.
        assert!(!trimmer.should_trim(SLACK / 2));
        // A burst freed 70 MB, and its last connections closed in the next
        // second: trim at both looks, then not at every look after them.
        assert!(trimmer.should_trim(70 << 20));
        assert!(trimmer.should_trim((70 << 20) + SLACK));
        assert!(!trimmer.should_trim((70 << 20) + SLACK));
        assert!(!trimmer.should_trim((70 << 20) + 2 * SLACK - 1));
        // The heap reused 40 MB of it, then freed it again: trim again.
        assert!(!trimmer.should_trim(30 << 20));
        assert!(trimmer.should_trim(70 << 20));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_small_allocations_show_as_free_bytes() {
        let before = os::free_bytes();
        // Small chunks, below malloc's mmap threshold, as connections use;
        // a live one at the end keeps them from merging into the heap's top,
        // which malloc would give back by itself.
        let chunks: Vec<Vec<u8>> = (0..2_000)
            .map(|_| std::hint::black_box(vec![1u8; 8 * 1024]))
            .collect();
        let keep = std::hint::black_box(vec![1u8; 8 * 1024]);
        drop(std::hint::black_box(chunks));
        let after = os::free_bytes();
        os::trim();
        drop(keep);
        assert!(
            after >= before + (8 << 20),
            "free bytes {before} -> {after} after freeing 16 MB"
        );
    }
}
