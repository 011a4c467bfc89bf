//! File mode's inputs, polled: the directory `meshc build --out DIR` writes
//! (`bundle.yaml`, `configs/<namespace>/<name>.yaml`,
//! `servicepolicies/<namespace>/<name>.yaml`), and small files
//! (endpoints, tokens) re-read when their content changes.
//!
//! A build rewrites its files in place, one after another, so a poll can
//! land half-way through. A change is applied only once two scans a few
//! milliseconds apart agree; the store refuses any mixture that still gets
//! through (a config its bundle does not sign), keeping the last good one.
//!
//! Files whose size, times and inode are unchanged are not re-read, so a
//! poll of ten thousand configs costs ten thousand `stat` calls.

use crate::store::{ObjectKey, Update};
use crate::supervise::blocking;
use bytes::Bytes;
use mesh_common::content_hash;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const BUNDLE_FILE: &str = "bundle.yaml";
pub const CONFIGS_DIR: &str = "configs";
pub const SERVICE_POLICIES_DIR: &str = "servicepolicies";
/// Pause between the two scans that must agree.
const SETTLE: Duration = Duration::from_millis(25);
/// A directory still changing after this many scans is applied as it is.
const SETTLE_TRIES: usize = 8;

/// One file's content and its hash.
#[derive(Clone, Debug)]
pub struct Content {
    pub hash: u64,
    pub bytes: Bytes,
}

impl PartialEq for Content {
    fn eq(&self, other: &Content) -> bool {
        self.hash == other.hash && self.bytes.len() == other.bytes.len()
    }
}

/// What a build directory holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub bundle: Option<Content>,
    pub configs: BTreeMap<ObjectKey, Content>,
    pub policies: BTreeMap<ObjectKey, Content>,
}

impl Snapshot {
    /// The store update that takes `self` to `next`.
    pub fn update_to(&self, next: &Snapshot) -> Update {
        let bundle = next.bundle.as_ref().filter(|b| self.bundle.as_ref() != Some(b)).map(|b| b.bytes.clone());
        let (configs, removed) = changes(&self.configs, &next.configs);
        let (policies, removed_policies) = changes(&self.policies, &next.policies);
        Update { bundle, configs, removed, policies, removed_policies }
    }
}

/// The objects new or changed from `before` to `after`, and those removed.
type Changes = (Vec<(ObjectKey, Bytes)>, Vec<ObjectKey>);

fn changes(before: &BTreeMap<ObjectKey, Content>, after: &BTreeMap<ObjectKey, Content>) -> Changes {
    let changed =
        after.iter().filter(|(k, c)| before.get(*k) != Some(c)).map(|(k, c)| (k.clone(), c.bytes.clone())).collect();
    let removed = before.keys().filter(|k| !after.contains_key(*k)).cloned().collect();
    (changed, removed)
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Fingerprint {
    fn of(m: &std::fs::Metadata) -> Fingerprint {
        Fingerprint {
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// Reads a build directory, re-reading only files that changed on disk.
pub struct DirScanner {
    dir: PathBuf,
    cache: HashMap<PathBuf, (Fingerprint, Content)>,
}

impl DirScanner {
    pub fn new(dir: PathBuf) -> DirScanner {
        DirScanner { dir, cache: HashMap::new() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory now. `Err` when it cannot be listed at all; a single
    /// unreadable file is left out (its object is then missing).
    pub fn scan(&mut self) -> Result<Snapshot, String> {
        let mut snap = Snapshot::default();
        let mut seen = HashMap::with_capacity(self.cache.len());
        let bundle = self.dir.join(BUNDLE_FILE);
        if bundle.exists() {
            snap.bundle = self.read(&bundle, &mut seen);
        }
        snap.configs = self.scan_objects(CONFIGS_DIR, &mut seen)?;
        snap.policies = self.scan_objects(SERVICE_POLICIES_DIR, &mut seen)?;
        self.cache = seen;
        Ok(snap)
    }

    /// The `<sub>/<namespace>/<name>.yaml` files, by object; none when
    /// `sub` does not exist in an existing directory.
    fn scan_objects(
        &self,
        sub: &str,
        seen: &mut HashMap<PathBuf, (Fingerprint, Content)>,
    ) -> Result<BTreeMap<ObjectKey, Content>, String> {
        let mut objects = BTreeMap::new();
        let root = self.dir.join(sub);
        let namespaces = match std::fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.dir.is_dir() => return Ok(objects),
            Err(e) => return Err(format!("{}: {e}", root.display())),
        };
        for ns in namespaces.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let Some(namespace) = ns.file_name().to_str().map(str::to_owned) else { continue };
            let Ok(files) = std::fs::read_dir(ns.path()) else { continue };
            for f in files.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_file())) {
                let path = f.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".yaml")) else {
                    continue;
                };
                let key = ObjectKey { namespace: namespace.clone(), name: name.to_owned() };
                if let Some(c) = self.read(&path, seen) {
                    objects.insert(key, c);
                }
            }
        }
        Ok(objects)
    }

    fn read(&self, path: &Path, seen: &mut HashMap<PathBuf, (Fingerprint, Content)>) -> Option<Content> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            // A FIFO or device would block the read (or never end).
            tracing::warn!(path = %path.display(), "not a regular file; left out");
            return None;
        }
        let fp = Fingerprint::of(&meta);
        let content = match self.cache.get(path) {
            Some((old, c)) if *old == fp => c.clone(),
            _ => match std::fs::read(path) {
                Ok(bytes) => Content { hash: content_hash(&bytes), bytes: Bytes::from(bytes) },
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot read: {e}");
                    return None;
                }
            },
        };
        seen.insert(path.to_path_buf(), (fp, content.clone()));
        Some(content)
    }

    /// [`scan`](Self::scan) on the blocking pool: ten thousand `stat`s
    /// must not hold up an async worker thread.
    async fn scan_off_thread(&mut self) -> Result<Snapshot, String> {
        let mut scanner = std::mem::replace(self, DirScanner::new(self.dir.clone()));
        let (scanner, snap) = blocking(move || {
            let snap = scanner.scan();
            (scanner, snap)
        })
        .await;
        *self = scanner;
        snap
    }

    /// A scan that differs from `applied` only once two scans agree (or
    /// after a bounded number of tries). `None` if the directory cannot be
    /// listed.
    pub async fn settled(&mut self, applied: &Snapshot) -> Result<Snapshot, String> {
        let mut snap = self.scan_off_thread().await?;
        for _ in 0..SETTLE_TRIES {
            if snap == *applied {
                break;
            }
            tokio::time::sleep(SETTLE).await;
            let again = self.scan_off_thread().await?;
            if again == snap {
                break;
            }
            snap = again;
        }
        Ok(snap)
    }
}

/// A small file's content, re-read every poll and reported when its hash changes.
pub struct FilePoll {
    path: PathBuf,
    last: Option<u64>,
}

impl FilePoll {
    pub fn new(path: PathBuf) -> FilePoll {
        FilePoll { path, last: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content if it changed since the last call; read errors are
    /// logged once per distinct error and yield nothing. The file is read
    /// on the blocking pool.
    pub async fn changed(&mut self) -> Option<Vec<u8>> {
        let path = self.path.clone();
        match blocking(move || std::fs::read(path)).await {
            Ok(bytes) => {
                let hash = content_hash(&bytes);
                (self.last != Some(hash)).then(|| {
                    self.last = Some(hash);
                    bytes
                })
            }
            Err(e) => {
                if self.last.is_some() {
                    tracing::warn!(path = %self.path.display(), "cannot read; keeping the last good content: {e}");
                }
                self.last = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_a_build_layout_and_reports_changes_as_an_update() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("configs/ns")).unwrap();
        std::fs::write(d.join("bundle.yaml"), "b1").unwrap();
        std::fs::write(d.join("configs/ns/a.yaml"), "a1").unwrap();
        std::fs::write(d.join("configs/ns/b.yaml"), "b1").unwrap();
        std::fs::write(d.join("configs/ns/notes.txt"), "x").unwrap();
        std::fs::write(d.join("crds.yaml"), "x").unwrap();
        std::fs::create_dir_all(d.join("servicepolicies/shop")).unwrap();
        std::fs::write(d.join("servicepolicies/shop/api.web.yaml"), "p1").unwrap();
        let mut s = DirScanner::new(d.to_path_buf());
        let first = s.scan().unwrap();
        assert_eq!(first.configs.len(), 2);
        let up = Snapshot::default().update_to(&first);
        assert_eq!(up.bundle.as_deref(), Some(&b"b1"[..]));
        assert_eq!(up.configs.len(), 2);
        let api = ObjectKey { namespace: "shop".into(), name: "api.web".into() };
        assert_eq!(up.policies, vec![(api.clone(), Bytes::from("p1"))]);
        std::fs::remove_file(d.join("servicepolicies/shop/api.web.yaml")).unwrap();
        let gone = DirScanner::new(d.to_path_buf()).scan().unwrap();
        assert_eq!(first.update_to(&gone).removed_policies, vec![api]);

        std::fs::write(d.join("configs/ns/a.yaml"), "a2").unwrap();
        std::fs::remove_file(d.join("configs/ns/b.yaml")).unwrap();
        let second = s.scan().unwrap();
        let up = first.update_to(&second);
        assert!(up.bundle.is_none(), "unchanged bundle is not re-sent");
        assert_eq!(up.configs, vec![(ObjectKey { namespace: "ns".into(), name: "a".into() }, Bytes::from("a2"))]);
        assert_eq!(up.removed, vec![ObjectKey { namespace: "ns".into(), name: "b".into() }]);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_an_empty_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DirScanner::new(dir.path().join("nope")).scan().is_err());
        assert_eq!(DirScanner::new(dir.path().to_path_buf()).scan().unwrap(), Snapshot::default());
    }

    #[tokio::test]
    async fn a_polled_file_reports_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        let mut p = FilePoll::new(path.clone());
        assert_eq!(p.changed().await, None);
        std::fs::write(&path, "1").unwrap();
        assert_eq!(p.changed().await.as_deref(), Some(&b"1"[..]));
        assert_eq!(p.changed().await, None);
        std::fs::write(&path, "2").unwrap();
        assert_eq!(p.changed().await.as_deref(), Some(&b"2"[..]));
    }

    fn mkfifo(path: &Path) {
        let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
    }

    #[test]
    fn a_fifo_in_the_build_directory_is_left_out_rather_than_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("configs/ns")).unwrap();
        std::fs::write(dir.path().join("configs/ns/a.yaml"), "a1").unwrap();
        mkfifo(&dir.path().join(BUNDLE_FILE));
        let mut scanner = DirScanner::new(dir.path().to_path_buf());
        // Reading a FIFO with no writer blocks forever: scan on a thread of
        // its own and give it a few seconds.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(scanner.scan()));
        let snap = rx.recv_timeout(Duration::from_secs(5)).expect("the scan returns").unwrap();
        assert!(snap.bundle.is_none());
        assert_eq!(snap.configs.len(), 1);
    }

    /// A read that blocks for a second (a FIFO whose writer comes late)
    /// leaves a single-threaded runtime free to run its other tasks.
    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_file_read_does_not_hold_up_the_async_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        mkfifo(&path);
        let writer_path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1000));
            std::fs::write(writer_path, "late").unwrap();
        });
        let ticker = tokio::spawn(async {
            let (mut last, mut longest) = (std::time::Instant::now(), Duration::ZERO);
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                longest = longest.max(last.elapsed());
                last = std::time::Instant::now();
            }
            longest
        });
        // Let the ticker start before the read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut poll = FilePoll::new(path);
        assert_eq!(poll.changed().await.as_deref(), Some(&b"late"[..]));
        let longest = ticker.await.unwrap();
        assert!(longest < Duration::from_millis(300), "the async thread stalled for {longest:?}");
    }
}
