//! Key files for `meshc keygen` and `meshc build`.
//!
//! `NAME.key`: PKCS#8 PEM private key, mode 0600, nothing else in it.
//! `NAME.pub`: `# keyid: <id>` then the SPKI PEM public key. Readers skip
//! lines before `-----BEGIN` (openssl does too), so the id is visible
//! without tooling and the file still loads anywhere.

use mesh_proxy_api::envelope;
use mesh_proxy_api::envelope::{SigningKey, VerifyingKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh key from the operating system's random source.
pub fn generate() -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key file's text.
pub fn public_file(key: &VerifyingKey) -> Result<String, String> {
    let pem = envelope::verifying_key_to_pem(key).map_err(|e| e.to_string())?;
    Ok(format!("# meshc ed25519 public key\n# keyid: {}\n{pem}", envelope::key_id(key)))
}

/// Writes `NAME.key` and `NAME.pub` under `dir`; returns their paths.
/// Without `force`, refuses when either exists, before writing anything.
pub fn write_pair(dir: &Path, name: &str, key: &SigningKey, force: bool) -> Result<(PathBuf, PathBuf), String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!("--name `{name}`: must be a plain file name"));
    }
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    if let Some(p) = [&private, &public].into_iter().find(|p| !force && p.exists()) {
        return Err(format!("{} exists (pass --force to overwrite)", p.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let pem = envelope::signing_key_to_pem(key).map_err(|e| e.to_string())?;
    write_file(&private, pem.as_bytes(), 0o600)?;
    write_file(&public, public_file(&key.verifying_key())?.as_bytes(), 0o644)?;
    Ok((private, public))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        // `mode` applies only to new files; an overwritten key keeps no wider bits.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot set permissions of {}: {e}", path.display()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    envelope::signing_key_from_pem(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, String> {
    envelope::verifying_key_from_pem(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}
