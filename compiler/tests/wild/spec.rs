//! The hand-written files of one corpus source, read into plain data:
//! - `stages.txt`: `STAGE = FILE...` (paths in the source's corpus folder;
//!   `FROM>TO` copies FROM under the name TO, `FROM!KIND/NAME` leaves that
//!   object out, line for line);
//!   a `STAGE.meshc.yaml` beside it becomes the stage's `meshc.yaml`;
//! - `STAGE.meshtest.yaml`: MeshTest flows, each named `ID ...`;
//! - `routing.txt`: client-side outcomes (see `routing.rs`);
//! - `expect.txt`: the real mistakes meshc must find, `code file:line`;
//! - `known-gaps.txt`: what meshc does not do yet, each with its reason and issue
//!   (`unmodelled CODE FILE:LINE`: a finding that says so itself).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub struct Stage {
    pub name: String,
    pub files: Vec<String>,
    pub settings: Option<PathBuf>,
    pub meshtest: Option<PathBuf>,
}

/// One `known-gaps.txt` line's subject.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gap {
    /// A stated outcome meshc gets wrong.
    Differs(String),
    /// A stated outcome meshc has no way to state.
    CannotExpress(String),
    /// A finding (`code file:line`) that is not a real mistake.
    FalseAlarm(String),
    /// A finding (`code file:line`) that truly says what meshc does not
    /// model there: neither a mistake of the source nor a false alarm.
    Unmodelled(String),
}

pub struct Source {
    pub name: String,
    pub dir: PathBuf,
    pub stages: Vec<Stage>,
    /// Outcome IDs stated in the corpus's SOURCE.md.
    pub stated: BTreeSet<String>,
    /// Real mistakes: `code file:line` → reasoning.
    pub expected_findings: BTreeMap<String, String>,
    /// Known gaps → reason and issue.
    pub gaps: BTreeMap<Gap, String>,
}

/// Lines without `#` comments and blank lines, with their line numbers.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let (body, comment) = l.split_once('#').unwrap_or((l, ""));
        let body = body.trim();
        (!body.is_empty()).then_some((i + 1, body, comment.trim()))
    })
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_optional(path: &Path) -> Result<String, String> {
    if path.exists() { read(path) } else { Ok(String::new()) }
}

fn stages(dir: &Path) -> Result<Vec<Stage>, String> {
    let path = dir.join("stages.txt");
    let mut out = Vec::new();
    for (n, body, _) in content_lines(&read(&path)?) {
        let (name, files) =
            body.split_once('=').ok_or_else(|| format!("{}:{n}: expected STAGE = FILE...", path.display()))?;
        let name = name.trim().to_owned();
        let settings = Some(dir.join(format!("{name}.meshc.yaml"))).filter(|p| p.exists());
        let meshtest = Some(dir.join(format!("{name}.meshtest.yaml"))).filter(|p| p.exists());
        let files = files.split_whitespace().map(str::to_owned).collect();
        out.push(Stage { name, files, settings, meshtest });
    }
    Ok(out)
}

/// `code file:line  # why` lines, normalised to single spaces.
fn findings(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = read_optional(&dir.join("expect.txt"))?;
    Ok(content_lines(&text).map(|(_, body, why)| (normalise(body), why.to_owned())).collect())
}

pub fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn gaps(dir: &Path) -> Result<BTreeMap<Gap, String>, String> {
    let path = dir.join("known-gaps.txt");
    let text = read_optional(&path)?;
    let mut out = BTreeMap::new();
    for (n, body, why) in content_lines(&text) {
        let (kind, subject) = body.split_once(' ').unwrap_or((body, ""));
        let subject = normalise(subject);
        let gap = match kind {
            "differs" => Gap::Differs(subject),
            "cannot-express" => Gap::CannotExpress(subject),
            "false-alarm" => Gap::FalseAlarm(subject),
            "unmodelled" => Gap::Unmodelled(subject),
            _ => {
                let msg = "is not differs, cannot-express, false-alarm or unmodelled";
                return Err(format!("{}:{n}: `{kind}` {msg}", path.display()));
            }
        };
        if why.is_empty() || !why.contains("issue") {
            return Err(format!(
                "{}:{n}: every gap says why and which issue tracks it (`# ... [issue N]`)",
                path.display()
            ));
        }
        out.insert(gap, why.to_owned());
    }
    Ok(out)
}

/// The IDs of SOURCE.md's EXPECTATIONS block: lines that start with an ID
/// (capital letters then digits) inside the fenced block after the heading.
fn stated_ids(source_md: &str) -> BTreeSet<String> {
    let Some((_, rest)) = source_md.split_once("## EXPECTATIONS") else { return BTreeSet::new() };
    let mut parts = rest.splitn(3, "```");
    let block = parts.nth(1).unwrap_or("");
    block.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| is_outcome_id(w)).map(str::to_owned).collect()
}

pub fn is_outcome_id(w: &str) -> bool {
    let letters = w.chars().take_while(char::is_ascii_uppercase).count();
    letters > 0 && w.len() > letters && w[letters..].chars().all(|c| c.is_ascii_digit())
}

pub fn load(suite: &Path, corpus: &Path, name: &str) -> Result<Source, String> {
    let dir = suite.join(name);
    Ok(Source {
        name: name.to_owned(),
        stages: stages(&dir)?,
        stated: stated_ids(&read(&corpus.join(name).join("SOURCE.md"))?),
        expected_findings: findings(&dir)?,
        gaps: gaps(&dir)?,
        dir,
    })
}

#[test]
fn outcome_ids_are_capitals_then_digits() {
    assert!(is_outcome_id("E1") && is_outcome_id("B12") && is_outcome_id("W3"));
    assert!(!is_outcome_id("E") && !is_outcome_id("x1") && !is_outcome_id("E1a") && !is_outcome_id(">"));
    let md = "intro E9 x\n## EXPECTATIONS\n```\nE1 [s] a => b\n   > \"quote\"\nE2 [fact] c\n```\nE3 later\n";
    assert_eq!(stated_ids(md), ["E1", "E2"].iter().map(|s| s.to_string()).collect());
}
