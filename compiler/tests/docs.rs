//! Documentation generated from the code: the finding-code table in
//! `docs/check.md` (from `findings/catalogue.rs`). It sits
//! between two HTML comment markers; a test fails when the page and the code
//! disagree, and `MESHC_BLESS=1 cargo test -p meshc --test docs` rewrites the
//! section (refused under CI).

use meshc::findings::Code;
use std::path::{Path, PathBuf};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// `text` with what lies between the `<!-- NAME:begin -->` and
/// `<!-- NAME:end -->` lines replaced by `body`; `Err` when a marker is
/// missing or they are out of order.
fn replace_section(text: &str, name: &str, body: &str) -> Result<String, String> {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let start = text.find(&begin).ok_or(format!("no `{}` marker", begin.trim()))? + begin.len();
    let stop = text[start..].find(&end).ok_or(format!("no `{end}` marker after the begin marker"))? + start;
    Ok(format!("{}{body}{}", &text[..start], &text[stop..]))
}

/// Compares the generated section of `page` with `body`; rewrites it when
/// blessing.
fn check_section(page: &str, name: &str, body: &str) {
    let path = repo_file(page);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let wanted = replace_section(&text, name, body).unwrap_or_else(|e| panic!("{page}: {e}"));
    let bless = mesh_test_support::blessing();
    if wanted == text {
        return;
    }
    if bless {
        std::fs::write(&path, wanted).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    panic!(
        "{page}: the `{name}` section disagrees with the code; run `MESHC_BLESS=1 cargo test -p meshc --test docs` \
         and review the diff.\n--- expected section ---\n{body}"
    );
}

/// A table cell: one line, no column breaks.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn finding_codes_table() -> String {
    let mut out = String::from("| code | severity | what it catches |\n|---|---|---|\n");
    for code in Code::ALL {
        let entry = code.entry();
        out.push_str(&format!("| `{code}` | {} | {} |\n", entry.severity.as_str(), cell(entry.summary)));
    }
    out
}

#[test]
fn finding_code_table_matches_the_catalogue() {
    check_section("docs/check.md", "finding-codes", &finding_codes_table());
}

#[test]
fn every_code_is_in_the_table() {
    let codes = finding_codes_table();
    assert!(Code::ALL.iter().all(|c| codes.contains(&format!("| `{c}` |"))));
    assert_eq!(codes.lines().count(), Code::ALL.len() + 2, "one row per code, no row split by a newline");
}

/// The hand-written notes on findings in docs/check.md (`- `code`: ...`
/// bullets) name only codes that exist.
#[test]
fn notes_on_findings_name_real_codes() {
    let text = std::fs::read_to_string(repo_file("docs/check.md")).expect("docs/check.md");
    let named: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .filter_map(|rest| rest.split_once(':').map(|(codes, _)| codes))
        .flat_map(|codes| codes.split(", "))
        .map(|code| code.trim_matches('`'))
        .collect();
    assert!(named.len() >= 20, "the notes are there: {named:?}");
    let unknown: Vec<&&str> = named.iter().filter(|c| Code::parse(c).is_none()).collect();
    assert!(unknown.is_empty(), "docs/check.md notes name codes the catalogue lacks: {unknown:?}");
}

#[test]
fn replace_section_keeps_everything_outside_the_markers() {
    let text = "a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n";
    assert_eq!(replace_section(text, "t", "new\n").unwrap(), "a\n<!-- t:begin -->\nnew\n<!-- t:end -->\nb\n");
    assert!(replace_section("no markers", "t", "x").is_err());
    assert!(replace_section("<!-- t:end -->\n<!-- t:begin -->\n", "t", "x").is_err());
}
