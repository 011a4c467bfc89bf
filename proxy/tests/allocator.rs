//! `run::bound_allocator` (issue 21): the buffers a connection allocates per
//! read come from the heap and are reused, and the heap's free memory goes
//! back when trimmed. Its own binary without the test harness: it runs on
//! the main thread, in glibc's main arena as the proxy's threads do once
//! `bound_allocator` has run first (a harness thread would have an arena
//! of its own, which `malloc_trim` does not shrink), and no other test
//! allocates beside it.

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::read_buffers_come_from_the_heap_are_reused_and_trimmed_back();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use mesh_proxy::run::{MMAP_THRESHOLD, TRIM_THRESHOLD, bound_allocator};

    /// hyper's largest HTTP/1 read buffer (`DEFAULT_MAX_BUFFER_SIZE` in its
    /// `proto/h1/io.rs`): what a connection reads a streaming body into.
    const READ_BUFFER: usize = 8192 + 4096 * 100;

    /// Read buffers live at once (a connection's buffer and chunks still on
    /// their way): each under the mmap threshold, all of them freed still
    /// under the trim threshold.
    const LIVE: usize = 3;
    const _: () = assert!(READ_BUFFER < MMAP_THRESHOLD && LIVE * READ_BUFFER < TRIM_THRESHOLD);

    /// (bytes in blocks mapped on their own, bytes of heap the arenas hold)
    fn allocator_bytes() -> (usize, usize) {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let info = unsafe { libc::mallinfo2() };
        (info.hblkhd, info.arena)
    }

    /// The process's resident memory in KiB, as the kernel counts it.
    fn resident_kib() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).unwrap_or(0)
    }

    fn read_buffer() -> Vec<u8> {
        // Written all over, as a read fills it: every page is touched.
        std::hint::black_box(vec![1u8; READ_BUFFER])
    }

    /// With a 128 KiB mmap threshold each read buffer was a mapping of its own,
    /// made, faulted in page by page and unmapped again for every read of a
    /// large body (docs/benchmarks/proxy.md, "Third round"). Bounded
    /// as now, the buffers come from the heap; freed, they stay there for the
    /// next reads (below the trim threshold), which take them without growing
    /// the heap; and `malloc_trim`, which the proxy calls every second, gives
    /// their pages back.
    pub fn read_buffers_come_from_the_heap_are_reused_and_trimmed_back() {
        bound_allocator();
        // A larger block freed first: glibc's own rule would move the
        // thresholds with it; fixed ones stay.
        drop(std::hint::black_box(vec![1u8; 4 * MMAP_THRESHOLD]));

        let (mapped_before, _) = allocator_bytes();
        let buffers: Vec<Vec<u8>> = (0..LIVE).map(|_| read_buffer()).collect();
        let (mapped_during, heap_during) = allocator_bytes();
        assert!(
            mapped_during < mapped_before + READ_BUFFER,
            "read buffers were mapped on their own ({mapped_before} → {mapped_during} bytes mapped)"
        );
        drop(buffers);
        let (_, heap_freed) = allocator_bytes();
        assert_eq!(heap_freed, heap_during, "freeing read buffers shrank the heap the next reads grow again");
        let again: Vec<Vec<u8>> = (0..LIVE).map(|_| read_buffer()).collect();
        let (_, heap_reused) = allocator_bytes();
        assert_eq!(heap_reused, heap_during, "the next read buffers grew the heap instead of reusing the freed ones");

        drop(again);
        let resident_before = resident_kib();
        // SAFETY: malloc_trim takes the allocator's own locks.
        unsafe { libc::malloc_trim(0) };
        let resident_after = resident_kib();
        assert!(
            resident_after + READ_BUFFER / 1024 <= resident_before,
            "malloc_trim kept the freed read buffers resident ({resident_before} → {resident_after} KiB)"
        );
    }
}
