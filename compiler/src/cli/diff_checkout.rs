//! A git revision of a multicluster repository, for `meshc diff`: the
//! multicluster layer reads each cluster as a directory of the repository
//! (`multicluster::repository`), so a revision whose meshc.yaml declares
//! `clusters:` is written out as one, into a temporary directory, and
//! compared as a directory is. Files keep their names relative to the root,
//! so findings name the same `file:line` as in the work tree.

use crate::load::{Input, InputError, SETTINGS_FILE};
use std::path::{Component, Path};
use tempfile::TempDir;

/// Whether a meshc.yaml text declares clusters (the key at the top level).
pub fn declares_clusters(settings: &str) -> bool {
    settings.lines().any(|l| l.starts_with("clusters:"))
}

/// `input` itself, or, for a revision of a multicluster repository, the
/// directory it was written out to (kept in `checkouts` until the diff ends).
pub fn as_directory(input: Input, checkouts: &mut Vec<TempDir>) -> Result<Input, InputError> {
    let Input::Files { files, settings: Some(settings) } = input else { return Ok(input) };
    if !declares_clusters(&settings) {
        return Ok(Input::Files { files, settings: Some(settings) });
    }
    let dir = tempfile::Builder::new()
        .prefix("meshc-diff-revision-")
        .tempdir()
        .map_err(|e| InputError(format!("cannot make a directory for the revision: {e}")))?;
    write(dir.path(), SETTINGS_FILE, &settings)?;
    for (name, text) in &files {
        // A file git holds but meshc cannot read (binary, not UTF-8) is
        // reported by the load of the directory as it is from the work tree.
        if let Ok(text) = text {
            write(dir.path(), name, text)?;
        }
    }
    let path = dir.path().to_path_buf();
    checkouts.push(dir);
    Ok(Input::Path(path))
}

/// Writes `text` at `name` under `root`; a name that would leave the root
/// (git never lists one) is refused rather than followed.
fn write(root: &Path, name: &str, text: &str) -> Result<(), InputError> {
    let relative = Path::new(name);
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(InputError(format!("{name}: not a path inside the repository")));
    }
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| InputError(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(&path, text).map_err(|e| InputError(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multicluster_revision_becomes_a_directory_and_others_stay_text() {
        let mut keep = Vec::new();
        let one = Input::Files {
            files: vec![("a.yaml".into(), Ok("x: 1".into()))],
            settings: Some("trustDomain: t\n".into()),
        };
        assert!(matches!(as_directory(one, &mut keep), Ok(Input::Files { .. })));
        let files =
            vec![("east/app.yaml".into(), Ok("kind: Service\n".into())), ("bin.yaml".into(), Err("binary".into()))];
        let multi = Input::Files { files, settings: Some("clusters:\n  - {name: east, directory: east}\n".into()) };
        let Ok(Input::Path(dir)) = as_directory(multi, &mut keep) else { panic!("a directory") };
        assert_eq!(std::fs::read_to_string(dir.join("east/app.yaml")).unwrap(), "kind: Service\n");
        assert!(std::fs::read_to_string(dir.join(SETTINGS_FILE)).unwrap().starts_with("clusters:"));
        assert!(!dir.join("bin.yaml").exists());
        assert_eq!(keep.len(), 1);
    }

    #[test]
    fn names_that_leave_the_root_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["../x.yaml", "/etc/x.yaml", "a/../../x.yaml"] {
            assert!(write(root.path(), bad, "").is_err(), "{bad}");
        }
    }
}
