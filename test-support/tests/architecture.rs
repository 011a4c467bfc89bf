//! ARCHITECTURE.md describes every crate of the workspace and every top-level
//! module of each: a crate needs a `## ` section whose heading names it in
//! backticks, and each `mod` its `lib.rs` or `main.rs` declares must appear
//! in a backticked span of that section (as `name`, `name::part` or
//! `{a,name}`). Test-only modules (`#[cfg(test)]`) are exempt.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The quoted paths of the root manifest's `members = [...]`.
fn workspace_members(manifest: &str) -> Vec<String> {
    let start = manifest.find("members").expect("the root Cargo.toml lists members");
    let open = start + manifest[start..].find('[').expect("members = [");
    let close = open + manifest[open..].find(']').expect("members = [...]");
    manifest[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The `name` of a manifest's `[package]`.
fn package_name(manifest: &str) -> String {
    let package = &manifest[manifest.find("[package]").expect("a [package] table")..];
    let line = package.lines().find(|l| l.trim_start().starts_with("name")).expect("a package name");
    line.split('"').nth(1).expect("name = \"...\"").to_owned()
}

/// Modules a crate root declares (`mod x;`, `pub mod x;`, `pub(crate) mod x {`),
/// except those under `#[cfg(test)]`.
fn declared_modules(root: &str) -> Vec<String> {
    let mut modules = Vec::new();
    let mut test_only = false;
    for line in root.lines().map(str::trim) {
        if line.starts_with("#[") {
            test_only |= line.replace(' ', "") == "#[cfg(test)]";
            continue;
        }
        let rest = line.strip_prefix("pub ").or_else(|| line.strip_prefix("pub(crate) ")).unwrap_or(line);
        if let Some(decl) = rest.strip_prefix("mod ") {
            let name: String = decl.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !test_only && !name.is_empty() {
                modules.push(name);
            }
        }
        if !line.is_empty() && !line.starts_with("//") {
            test_only = false;
        }
    }
    modules
}

/// The text of the `## ` section whose heading names `crate_name` in backticks.
fn crate_section<'a>(doc: &'a str, crate_name: &str) -> Option<&'a str> {
    let needle = format!("`{crate_name}`");
    let mut sections = doc.split("\n## ").skip(1);
    sections.find(|s| s.lines().next().is_some_and(|heading| heading.contains(&needle)))
}

/// Whether `name` is a whole identifier inside some backticked span of `text`.
fn mentions_module(text: &str, name: &str) -> bool {
    text.split('`')
        .skip(1)
        .step_by(2)
        .any(|span| span.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|word| word == name))
}

/// What ARCHITECTURE.md lacks, one line per omission.
fn omissions(doc: &str, repo: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    for member in workspace_members(&read(&repo.join("Cargo.toml"))) {
        let name = package_name(&read(&repo.join(&member).join("Cargo.toml")));
        let Some(section) = crate_section(doc, &name) else {
            missing.push(format!("crate `{name}` ({member}/) has no `## ` section naming it"));
            continue;
        };
        for root in ["src/lib.rs", "src/main.rs"] {
            let path = repo.join(&member).join(root);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for module in declared_modules(&text) {
                if !mentions_module(section, &module) {
                    missing.push(format!("module `{module}` of `{name}` ({member}/{root}) is not described"));
                }
            }
        }
    }
    missing
}

#[test]
fn architecture_describes_every_crate_and_top_level_module() {
    let repo = repo();
    let missing = omissions(&read(&repo.join("ARCHITECTURE.md")), &repo);
    assert!(missing.is_empty(), "ARCHITECTURE.md is behind the code:\n{}", missing.join("\n"));
}

#[test]
fn the_workspace_has_the_crates_this_test_expects_to_read() {
    let members = workspace_members(&read(&repo().join("Cargo.toml")));
    assert!(members.len() >= 6, "{members:?}");
    assert!(members.iter().any(|m| m == "compiler"));
}

#[test]
fn modules_are_read_from_declarations_not_tests() {
    let root = "//! doc\npub mod a;\nmod b;\npub(crate) mod c {\n}\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\n// why\nmod more_tests {}\nmod d;\n";
    assert_eq!(declared_modules(root), ["a", "b", "c", "d"]);
}

#[test]
fn a_module_counts_only_inside_backticks_of_its_crate_section() {
    let doc = "# A\n\n## `one` (x/)\n\n| `load::yaml`, `lower::{a,outbound}` | cli is mentioned bare |\n\n## `two` (y/)\n\n`cli`\n";
    let one = crate_section(doc, "one").expect("a section for `one`");
    assert!(mentions_module(one, "load") && mentions_module(one, "yaml") && mentions_module(one, "outbound"));
    assert!(!mentions_module(one, "cli"), "outside backticks");
    assert!(!mentions_module(one, "low"), "whole identifiers only");
    assert!(crate_section(doc, "three").is_none());
    assert!(mentions_module(crate_section(doc, "two").expect("two"), "cli"));
}

#[test]
fn members_and_names_are_parsed_from_manifests() {
    let manifest = "[workspace]\nmembers = [\"a\", \"b/c\",\n  \"d\"]\n[workspace.package]\nversion = \"1\"\n";
    assert_eq!(workspace_members(manifest), ["a", "b/c", "d"]);
    assert_eq!(package_name("[package]\nname = \"x-y\"\nversion = \"1\"\n"), "x-y");
}
