//! Documentation generated from the code: the finding-code table in
//! `docs/check.md` (from `findings/catalogue.rs`) and the list of settings in
//! `docs/settings.md` (from the JSON Schema of `meshc.yaml`). Each sits
//! between two HTML comment markers; a test fails when the page and the code
//! disagree, and `MESHC_BLESS=1 cargo test -p meshc --test docs` rewrites the
//! section (refused under CI).

use meshc::findings::Code;
use serde_json::{Map, Value};
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

fn settings_schema() -> Value {
    let (_, text) = meshc::schemas::all()
        .into_iter()
        .find(|(name, _)| *name == "meshc-settings.schema.json")
        .expect("meshc publishes the settings schema");
    serde_json::from_str(&text).expect("the settings schema is JSON")
}

/// The JSON type of a schema, `null` left out (every key is optional).
fn type_name(schema: &Value, defs: &Map<String, Value>) -> String {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    match types.as_slice() {
        ["array"] => format!("list of {}", type_name(&schema["items"], defs)),
        ["object"] => match schema.get("additionalProperties") {
            Some(values) if values.is_object() => format!("map of {}", type_name(values, defs)),
            _ => "object".to_owned(),
        },
        [one] => (*one).to_owned(),
        [] if referenced(schema, defs).is_some() => "object".to_owned(),
        [] => "any".to_owned(),
        many => many.join(" or "),
    }
}

/// The `$defs` entry a `{"$ref": "#/$defs/NAME"}` schema names.
fn referenced<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> Option<(&'a str, &'a Value)> {
    let name = schema.get("$ref")?.as_str()?.strip_prefix("#/$defs/")?;
    defs.get_key_value(name).map(|(k, v)| (k.as_str(), v))
}

/// One row per key; a map whose values are objects (`namespaces`) also gets
/// a row per field of its values, as `KEY.NAME.FIELD`.
fn settings_table() -> String {
    let schema = settings_schema();
    let empty = Map::new();
    let defs = schema["$defs"].as_object().unwrap_or(&empty);
    let properties = schema["properties"].as_object().expect("the settings schema has properties");
    let mut out = String::from("| key | type | what |\n|---|---|---|\n");
    for (key, property) in properties {
        let what = property["description"].as_str().unwrap_or("");
        out.push_str(&format!("| `{key}` | {} | {} |\n", type_name(property, defs), cell(what)));
        let Some((_, value_schema)) = property.get("additionalProperties").and_then(|v| referenced(v, defs)) else {
            continue;
        };
        for (field, field_schema) in value_schema["properties"].as_object().unwrap_or(&empty) {
            let what = field_schema["description"].as_str().map_or_else(|| format!("`{field}` of that entry"), cell);
            out.push_str(&format!("| `{key}.NAME.{field}` | {} | {what} |\n", type_name(field_schema, defs)));
        }
    }
    out
}

#[test]
fn finding_code_table_matches_the_catalogue() {
    check_section("docs/check.md", "finding-codes", &finding_codes_table());
}

#[test]
fn settings_list_matches_the_settings_schema() {
    check_section("docs/settings.md", "settings", &settings_table());
}

#[test]
fn every_code_and_setting_is_in_its_table() {
    let codes = finding_codes_table();
    assert!(Code::ALL.iter().all(|c| codes.contains(&format!("| `{c}` |"))));
    assert_eq!(codes.lines().count(), Code::ALL.len() + 2, "one row per code, no row split by a newline");
    let settings = settings_table();
    for key in ["defaultInboundPolicy", "clusterNetworks", "kubeletIp", "namespaces", "namespaces.NAME.annotations"] {
        assert!(settings.contains(&format!("| `{key}` |")), "{key} is listed");
    }
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
