//! The README's toolchain claim is the workspace's `rust-version`, which cargo
//! enforces on every build, and CI's toolchain satisfies it.

use std::path::Path;
use std::process::Command;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn minor_version(text: &str) -> (u32, u32) {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().expect("a version number"));
    (parts.next().expect("major"), parts.next().expect("minor"))
}

fn workspace_rust_version() -> String {
    let toml = repo_file("Cargo.toml");
    let line = toml.lines().find(|l| l.starts_with("rust-version")).expect("the workspace sets rust-version");
    line.split('"').nth(1).expect("rust-version = \"X.Y\"").to_owned()
}

#[test]
fn readme_claims_the_rust_version_cargo_enforces() {
    let version = workspace_rust_version();
    let claim = format!("Rust toolchain ({version} or newer)");
    assert!(repo_file("README.md").contains(&claim), "README.md must say `{claim}`, the workspace's rust-version");
}

#[test]
fn the_toolchain_building_this_satisfies_rust_version() {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())).arg("--version").output();
    let out = out.expect("rustc runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let running = minor_version(text.split_whitespace().nth(1).expect("rustc X.Y.Z"));
    assert!(running >= minor_version(&workspace_rust_version()), "{text} is older than rust-version");
}
