//! Every relative link in the repository's Markdown (`[text](path#anchor)`)
//! points at a file that exists and, for a `.md` target with an anchor, at
//! a heading it has. The documentation is split over many pages and
//! sections move between them; a link left behind fails here.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Markdown files under `dir`, skipping build output and hidden directories.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && !name.starts_with('.') && name != "target" {
            markdown_files(&path, out);
        } else if kind.is_file() && name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The text outside fenced code blocks (headings keep their code spans:
/// GitHub's anchors are made from their text).
fn outside_fences(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The text links are looked for in: outside fences and inline code spans
/// (a regex such as `[a-z]([-a-z]*)` in backticks is no link).
fn prose(text: &str) -> String {
    outside_fences(text).lines().flat_map(|line| line.split('`').step_by(2).chain(["\n"])).collect()
}

/// `(target, anchor)` of every `](...)` link; external ones left out.
fn links(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for piece in text.split("](").skip(1) {
        let Some(end) = piece.find(')') else { continue };
        let link = &piece[..end];
        if link.contains(char::is_whitespace) || link.contains("://") || link.starts_with("mailto:") {
            continue;
        }
        let (target, anchor) = match link.split_once('#') {
            Some((t, a)) => (t, Some(a.to_owned())),
            None => (link, None),
        };
        out.push((target.to_owned(), anchor));
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-`
/// and `_` dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    outside_fences(markdown).lines().filter(|l| l.starts_with('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

/// Broken links of one file, as `file: link (reason)`.
fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut broken = Vec::new();
    for (target, anchor) in links(&prose(&text)) {
        let path = if target.is_empty() { file.to_path_buf() } else { file.parent().unwrap_or(file).join(&target) };
        let name = file.strip_prefix(repo()).unwrap_or(file).display();
        let shown = format!("{name}: ({target}{})", anchor.as_ref().map_or(String::new(), |a| format!("#{a}")));
        if !path.exists() {
            broken.push(format!("{shown} points at nothing"));
            continue;
        }
        let Some(anchor) = anchor.filter(|_| path.extension().is_some_and(|e| e == "md")) else { continue };
        if !anchors(&std::fs::read_to_string(&path).unwrap_or_default()).contains(&anchor) {
            broken.push(format!("{shown} names a heading the page lacks"));
        }
    }
    broken
}

#[test]
fn every_relative_markdown_link_resolves() {
    let mut files = Vec::new();
    markdown_files(&repo(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("docs/README.md")), "the docs are found");
    let broken: Vec<String> = files.iter().flat_map(|f| broken_links(f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn links_and_anchors_are_read_as_github_does() {
    let text = "see [a](docs/a.md#the-b-c) and [x](https://e.org/y) and [self](#top)\n```\n[code](nope.md)\n```\n";
    assert_eq!(
        links(&prose(text)),
        [("docs/a.md".to_owned(), Some("the-b-c".to_owned())), (String::new(), Some("top".to_owned()))]
    );
    assert_eq!(slug(" `meshc diff`: what a change does"), "meshc-diff-what-a-change-does");
    assert_eq!(anchors("# Top\n```\n# not a heading\n```\n## The B, C\n"), ["top", "the-b-c"]);
}
