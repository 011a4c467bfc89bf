//! Renderers meshc runs on what the repository holds: a directory with a
//! kustomization file is built with kustomize (`kustomize.rs`), keeping each
//! object's origin so findings point at the base or patch file as written
//! (`origin.rs`); a Helm release whose chart is in the repository is
//! rendered with `helm template` (`helm.rs`, `helm_values.rs`). The binaries run under a deadline (`run.rs`); a failure is
//! a `render-failed` finding with the tool's message, at the file.

mod helm;
pub(crate) mod helm_values;
mod kustomize;
mod origin;
mod patches;
pub mod run;
mod sources;

pub use sources::Where;

pub use helm::render_releases;
pub use kustomize::render_kustomizations;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default deadline for one renderer run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The renderer binaries to run, as the user chose them.
#[derive(Clone, Debug, PartialEq)]
pub struct Tools {
    /// `--kustomize-bin`.
    pub kustomize: Engine,
    /// `--helm-bin`: `helm` on PATH by default; `Never` leaves releases unrendered.
    pub helm: Engine,
    /// Deadline for each run.
    pub timeout: Duration,
}

impl Default for Tools {
    fn default() -> Tools {
        Tools { kustomize: Engine::Search, helm: Engine::Search, timeout: DEFAULT_TIMEOUT }
    }
}

/// Which renderer binary to run (kustomize or helm).
#[derive(Clone, Debug, PartialEq)]
pub enum Engine {
    /// `kustomize` on PATH, else `kubectl`; none found: files stay `skipped-file`.
    Search,
    /// Render nothing (`--kustomize-bin none`): kustomization files stay
    /// `skipped-file`, as on a machine without the binaries.
    Never,
    /// For kustomize, a `kustomize` (run as `kustomize build DIR`) or a
    /// `kubectl` (run as `kubectl kustomize DIR`), told apart by file name;
    /// for Helm, a `helm`.
    At(PathBuf),
}

impl std::str::FromStr for Engine {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Engine, Self::Err> {
        Ok(if s == "none" { Engine::Never } else { Engine::At(PathBuf::from(s)) })
    }
}

/// How to run kustomize: the program and the words before the directory.
#[derive(Clone, Debug)]
pub struct Kustomize {
    pub program: PathBuf,
    pub build: Vec<String>,
}

impl Tools {
    /// The kustomize engine to run, if one is available.
    pub fn kustomize(&self) -> Option<Kustomize> {
        let program = match &self.kustomize {
            Engine::At(p) => p.clone(),
            Engine::Search => find_on_path("kustomize").or_else(|| find_on_path("kubectl"))?,
            Engine::Never => return None,
        };
        let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let build = if name.starts_with("kubectl") { "kustomize" } else { "build" };
        Some(Kustomize { program, build: vec![build.to_owned()] })
    }
}

impl Tools {
    /// The helm binary to run, if one is available.
    pub fn helm(&self) -> Option<PathBuf> {
        match &self.helm {
            Engine::At(p) => Some(p.clone()),
            Engine::Search => find_on_path("helm"),
            Engine::Never => None,
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}
