//! `mesh-e2e`: the end-to-end tests (`tests/e2e`) and the runtime benchmark
//! (`examples/bench_runtime`), which run mesh-proxy and mesh-runtime
//! together. They live in a crate of their own so that neither production
//! crate depends on the other, not even for tests.
//!
//! The library finds the binaries the tests spawn. Cargo hands an
//! integration test the paths of its own package's binaries only
//! (`CARGO_BIN_EXE_*`), and `mesh-proxy` and `mesh-echo` are other
//! packages', so [`binary`] builds them with the same cargo, profile and
//! target directory the test was built with, once per test process.
//! [`echo`] starts mesh-echo as a workload's app, the same way for every
//! test that runs one.

pub mod echo;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the binaries are when a parent test process already built them;
/// a test re-run inside a network namespace takes them from here.
pub const BIN_DIR_ENV: &str = "MESH_E2E_BIN_DIR";

/// The packages and binaries the end-to-end tests spawn.
const BINARIES: [(&str, &str); 2] = [("mesh-proxy", "mesh-proxy"), ("mesh-devtools", "mesh-echo")];

/// The path of workspace binary `name` (`mesh-proxy` or `mesh-echo`),
/// built first if this process has not yet made sure it is current.
pub fn binary(name: &str) -> PathBuf {
    assert!(BINARIES.iter().any(|(_, bin)| *bin == name), "{name} is not one of the binaries the e2e tests build");
    bin_dir().join(name)
}

/// The directory holding current builds of every binary in [`BINARIES`]:
/// `MESH_E2E_BIN_DIR` when set, else the test's own profile directory after
/// a `cargo build` of them there.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => build().unwrap_or_else(|e| panic!("building the e2e binaries: {e}")),
    })
    .clone()
}

/// Runs `cargo build` for [`BINARIES`] into the profile directory this
/// test executable sits in (`<target>/<profile>/deps/<test>`), so nothing
/// is built twice and a release test run spawns release binaries.
fn build() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test's own path: {e}"))?;
    let profile_dir = exe
        .parent()
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in a cargo <target>/<profile>/deps directory", exe.display()))?;
    let target_dir = profile_dir.parent().ok_or("the profile directory has no parent")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => return Err(format!("{}: no profile name", profile_dir.display())),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--profile", profile]).arg("--target-dir").arg(target_dir);
    for (package, bin) in BINARIES {
        command.args(["-p", package, "--bin", bin]);
    }
    let status = command.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of {BINARIES:?} failed ({status})"));
    }
    Ok(profile_dir.to_path_buf())
}
