use super::{EXIT_FINDINGS, EXIT_USAGE};
use crate::emit::{keys, verify};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct VerifyBundleArgs {
    /// A `meshc build --out` directory, or one YAML stream (`meshc build --stdout`).
    path: PathBuf,
    /// A trusted public key file (repeatable: any of them may have signed).
    #[arg(long = "pubkey", value_name = "KEY.pub", required = true)]
    pubkeys: Vec<PathBuf>,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(args: VerifyBundleArgs) -> ExitCode {
    let mut trusted = Vec::new();
    for p in &args.pubkeys {
        match keys::read_verifying_key(p) {
            Ok(k) => trusted.push(k),
            Err(e) => return usage(&e),
        }
    }
    if !args.path.exists() {
        return usage(&format!("{}: no such file or directory", args.path.display()));
    }
    match verify::verify_path(&args.path, &trusted) {
        Err(e) => usage(&e),
        Ok(Ok(v)) => {
            let m = &v.manifest;
            let allow = if m.allow_errors {
                format!(", built with {} error finding(s)", m.error_findings)
            } else {
                String::new()
            };
            outln!(
                "{}: {} ProxyConfig(s) verified, signed by key {}, revision {}, sequence {}{allow}",
                args.path.display(),
                v.configs.len(),
                m.key_id,
                m.source_revision,
                m.sequence
            );
            ExitCode::SUCCESS
        }
        Ok(Err(problems)) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("{}: verification failed ({} problem(s))", args.path.display(), problems.len());
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}
