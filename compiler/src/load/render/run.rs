//! Runs a renderer (kustomize, helm) as a child process with a deadline: a
//! renderer that hangs (a remote base on an unreachable host, a plugin
//! waiting on a terminal) is killed and reported, so `meshc check` always
//! finishes. stdin is closed; stdout and stderr are drained on their own
//! threads so a chatty renderer cannot block on a full pipe.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a renderer produced no manifests.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// It could not be started (not found, not executable).
    Start(String),
    /// It exited unsuccessfully; its stderr (or stdout), trimmed.
    Exit(String),
    /// It ran past the deadline and was killed.
    Timeout(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Start(e) => write!(f, "could not be started: {e}"),
            Failure::Exit(msg) => write!(f, "failed: {msg}"),
            Failure::Timeout(t) => write!(f, "did not finish within {} s and was stopped", t.as_secs_f64()),
        }
    }
}

/// Runs `program args` in `dir` and returns its stdout.
pub fn run(program: &Path, args: &[String], dir: &Path, timeout: Duration) -> Result<String, Failure> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Start(format!("{}: {e}", program.display())))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let start = Instant::now();
    // Most builds take tens of milliseconds: poll often at first, then less.
    let mut pause = Duration::from_micros(500);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::Timeout(timeout));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Failure::Start(e.to_string())),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let text = if stderr.is_empty() { stdout } else { stderr };
        let msg = String::from_utf8_lossy(&text).trim().to_owned();
        return Err(Failure::Exit(if msg.is_empty() { status.to_string() } else { msg }));
    }
    String::from_utf8(stdout).map_err(|_| Failure::Exit("its output is not UTF-8 text".to_owned()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Result<String, Failure> {
        run(Path::new("/bin/sh"), &["-c".to_owned(), script.to_owned()], Path::new("."), timeout)
    }

    #[test]
    fn output_failure_and_timeout() {
        assert_eq!(sh("echo kind: X", Duration::from_secs(10)), Ok("kind: X\n".to_owned()));
        assert_eq!(sh("echo bad >&2; exit 3", Duration::from_secs(10)), Err(Failure::Exit("bad".to_owned())));
        let start = Instant::now();
        let hung = sh("sleep 30", Duration::from_millis(200));
        assert_eq!(hung, Err(Failure::Timeout(Duration::from_millis(200))));
        assert!(start.elapsed() < Duration::from_secs(5), "the hung child was not stopped");
        assert!(matches!(
            run(Path::new("/nonexistent/kustomize"), &[], Path::new("."), Duration::from_secs(1)),
            Err(Failure::Start(_))
        ));
    }
}
