//! A blob larger than the file limit in a revision is a finding, and is
//! never held in memory: the loader checks the size git announces before
//! it allocates anything for the content.

// Only `git` is used here.
#[allow(dead_code)]
#[path = "support/gitrepo.rs"]
mod gitrepo;

use meshc::load::discover::MAX_FILE_BYTES;
use meshc::load::git::read_revision;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The system allocator, recording the largest single allocation while armed.
struct Largest;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

#[test]
fn oversized_blob_is_a_finding_and_is_never_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'#'; usize::try_from(MAX_FILE_BYTES).unwrap() + 1];
    std::fs::write(dir.path().join("big.yaml"), &big).unwrap();
    drop(big);
    std::fs::write(dir.path().join("svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n").unwrap();
    gitrepo::git(dir.path(), &["init", "-q"]);
    gitrepo::git(dir.path(), &["add", "-A"]);
    gitrepo::git(dir.path(), &["commit", "-q", "-m", "big"]);

    ARMED.store(true, Ordering::Relaxed);
    let revision = read_revision(dir.path(), "HEAD");
    ARMED.store(false, Ordering::Relaxed);
    let revision = revision.unwrap_or_else(|e| panic!("{e}"));

    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 8 << 20, "an allocation of {largest} bytes: the blob's size was allocated");
    let names: Vec<&str> = revision.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["big.yaml", "svc.yaml"], "the file after the big one is still read");
    let big = &revision.files[0].1;
    assert!(big.as_ref().is_err_and(|e| e.contains("larger than")), "{big:?}");
    assert!(revision.files[1].1.as_ref().is_ok_and(|t| t.contains("kind: Service")));
}
