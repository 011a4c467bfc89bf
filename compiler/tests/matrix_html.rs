//! `meshc matrix --format html` in a real headless Chromium: the page must
//! render every allowed cell the JSON implies, one group per namespace, and
//! fetch nothing. The dumped DOM is read with a small tag scanner (no HTML
//! parser dependency); the expected cells are computed from the JSON here,
//! independently of the page's script.

use meshc::query::render::html;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------- browser

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn find_browser() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.is_file() {
        return Some(debian);
    }
    ["chromium", "chromium-browser", "google-chrome"].into_iter().find_map(on_path)
}

/// The browser, or `None` when the test should be skipped: a missing
/// browser only skips on a developer machine, never in CI.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(b) = find_browser() {
        return Some(b);
    }
    mesh_test_support::missing(
        test,
        "no Chromium found (/usr/bin/chromium, chromium, chromium-browser, google-chrome)",
        "apt-get install -y chromium",
    );
    None
}

fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.display().to_string().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => url.push(b as char),
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url
}

/// Waits for the child, killing it after `BROWSER_TIMEOUT` so a hung
/// browser fails the test instead of stalling the suite.
fn wait_bounded(mut child: Child, stderr: &Path) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll browser") {
            return status;
        }
        if start.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish in {BROWSER_TIMEOUT:?}: {}", read_lossy(stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The DOM after the page's scripts ran, as Chromium serializes it.
/// Output goes to files, not pipes: a large DOM would fill a pipe and
/// block the browser while the test only polls for its exit.
fn dump_dom(browser: &Path, page: &Path, scratch: &Path) -> String {
    let (stdout, stderr) = (scratch.join("dom.html"), scratch.join("chromium.log"));
    let child = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", scratch.join("chromium-profile").display()))
        .arg("--dump-dom")
        .arg(file_url(page))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).expect("create dom file"))
        .stderr(File::create(&stderr).expect("create log file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let status = wait_bounded(child, &stderr);
    let dom = read_lossy(&stdout);
    assert!(status.success() && dom.contains("</html>"), "Chromium failed ({status}):\n{}", read_lossy(&stderr));
    dom
}

// ---------------------------------------------------------------- DOM scanning

#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn classes(&self) -> Vec<&str> {
        self.attr("class").map(|c| c.split_whitespace().collect()).unwrap_or_default()
    }

    fn has_class(&self, class: &str) -> bool {
        self.classes().contains(&class)
    }
}

fn unescape(v: &str) -> String {
    v.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Parses the attributes of the tag whose name ends at `i`; returns them
/// and the index just past the closing `>`. Quoted values may hold `>`.
fn attributes(s: &[u8], mut i: usize) -> (Vec<(String, String)>, usize) {
    let text = |a: usize, b: usize| String::from_utf8_lossy(&s[a..b]).into_owned();
    let mut attrs = Vec::new();
    while i < s.len() && s[i] != b'>' {
        if s[i].is_ascii_whitespace() || s[i] == b'/' {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && !b" \t\n\r=>/".contains(&s[i]) {
            i += 1;
        }
        let name = text(start, i).to_ascii_lowercase();
        let mut value = String::new();
        if i < s.len() && s[i] == b'=' {
            i += 1;
            let quote = s.get(i).copied().filter(|q| *q == b'"' || *q == b'\'');
            let vstart = if quote.is_some() { i + 1 } else { i };
            let mut j = vstart;
            while j < s.len() && quote.map_or(!s[j].is_ascii_whitespace() && s[j] != b'>', |q| s[j] != q) {
                j += 1;
            }
            value = unescape(&text(vstart, j));
            i = if quote.is_some() { j + 1 } else { j };
        }
        attrs.push((name, value));
    }
    (attrs, i + 1)
}

/// Every start tag in document order. The contents of `script` and `style`
/// are skipped: they are raw text, not markup.
fn tags(doc: &str) -> Vec<Tag> {
    let s = doc.as_bytes();
    let lower = doc.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = doc[i..].find('<') {
        i += off + 1;
        if !s.get(i).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let start = i;
        while i < s.len() && !s[i].is_ascii_whitespace() && s[i] != b'>' && s[i] != b'/' {
            i += 1;
        }
        let name = doc[start..i].to_ascii_lowercase();
        let (attrs, next) = attributes(s, i);
        i = next.min(s.len());
        if name == "script" || name == "style" {
            i = lower[i..].find(&format!("</{name}")).map_or(s.len(), |p| i + p);
        }
        out.push(Tag { name, attrs });
    }
    out
}

// ---------------------------------------------------------------- expectations

type Cells = BTreeMap<(String, String), &'static str>;

/// Version 2 (grouped rows naming a set of classes) as version 1, one edge
/// per class, which the checks below read; the page must draw the same.
fn per_class(m: &Value) -> Value {
    let sets = m["clientSets"].as_array().expect("clientSets");
    let mut edges = Vec::new();
    for row in m["edges"].as_array().expect("edges") {
        let clients = match &row["clients"] {
            Value::String(s) if s == "*" => vec![json!("*")],
            Value::Number(n) => {
                let set = sets[n.as_u64().expect("set index") as usize].as_array().expect("set");
                // An item is a class id, or [first, last] for a run of them.
                set.iter()
                    .flat_map(|item| match item.as_array() {
                        Some(run) => (run[0].as_u64().expect("first")..=run[1].as_u64().expect("last")).collect(),
                        None => vec![item.as_u64().expect("class id")],
                    })
                    .map(|c| json!(c))
                    .collect()
            }
            other => panic!("a row's clients is `*` or a set index: {other}"),
        };
        for c in clients {
            let mut e = row.clone();
            let fields = e.as_object_mut().expect("row object");
            fields.remove("clients");
            fields.insert("client".to_owned(), c);
            edges.push(e);
        }
    }
    let mut v1 = m.clone();
    v1["version"] = json!(1);
    v1["edges"] = Value::Array(edges);
    v1
}

fn target_key(edge: &Value) -> String {
    let t = &edge["target"];
    format!("{}:{}", t["workload"].as_str().expect("target.workload"), t["port"])
}

/// The rows the page must draw: every class, plus any client an edge names
/// that the class list lacks.
fn rows(m: &Value) -> BTreeSet<String> {
    let classes = m["classes"].as_array().expect("classes").iter().map(|c| c["id"].to_string());
    let named = m["edges"].as_array().expect("edges").iter().map(|e| &e["client"]).filter(|c| c.is_number());
    classes.chain(named.map(Value::to_string)).collect()
}

/// (client, target) → verdict of every non-empty cell: a `*` edge fills
/// its column, duplicates count once, and allow wins over partial.
fn expected_cells(m: &Value) -> Cells {
    let rows = rows(m);
    let mut cells = Cells::new();
    for e in m["edges"].as_array().expect("edges") {
        let verdict = if e["verdict"] == "partial" { "partial" } else { "allow" };
        let clients: Vec<String> = match &e["client"] {
            Value::String(s) if s == "*" => rows.iter().cloned().collect(),
            c => vec![c.to_string()],
        };
        for c in clients {
            let cell = cells.entry((c, target_key(e))).or_insert(verdict);
            if verdict == "allow" {
                *cell = "allow";
            }
        }
    }
    cells
}

/// The column groups: each workload's namespace, `CLUSTER / NS` in a multicluster matrix.
fn workload_namespaces(m: &Value) -> BTreeSet<String> {
    let ws = m["workloads"].as_array().expect("workloads");
    ws.iter()
        .map(|w| {
            let ns = w["namespace"].as_str().expect("workload.namespace");
            match w["cluster"].as_str() {
                Some(c) => format!("{c} / {ns}"),
                None => ns.to_owned(),
            }
        })
        .collect()
}

/// The routes each partial edge lists, per cell, for the tooltip check.
fn partial_routes(m: &Value) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for e in m["edges"].as_array().expect("edges").iter().filter(|e| e["verdict"] == "partial" && e["client"] != "*") {
        let routes = e["routes"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned));
        out.entry((e["client"].to_string(), target_key(e))).or_default().extend(routes);
    }
    out
}

// ---------------------------------------------------------------- checks

fn assert_rendered(tags: &[Tag]) {
    let matrix = tags.iter().find(|t| t.attr("id") == Some("matrix")).expect("#matrix element");
    assert_eq!(matrix.attr("data-state"), Some("ok"), "the page's script did not finish rendering");
}

fn assert_namespace_groups(tags: &[Tag], m: &Value) {
    let groups: Vec<&str> =
        tags.iter().filter(|t| t.has_class("ns-group")).filter_map(|t| t.attr("data-namespace")).collect();
    let expected = workload_namespaces(m);
    assert_eq!(groups.len(), expected.len(), "one ns-group per namespace: {groups:?} vs {expected:?}");
    assert_eq!(groups.iter().map(|g| g.to_string()).collect::<BTreeSet<_>>(), expected);
}

fn drawn_cells(tags: &[Tag]) -> Cells {
    let edges: Vec<&Tag> = tags.iter().filter(|t| t.has_class("edge")).collect();
    let mut cells = Cells::new();
    for t in &edges {
        assert_eq!(t.name, "td", "edge class on a non-cell: {t:?}");
        let verdict = match (t.has_class("allow"), t.has_class("partial")) {
            (true, false) => "allow",
            (false, true) => "partial",
            _ => panic!("an edge cell is exactly one of allow/partial: {t:?}"),
        };
        let key = (t.attr("data-client").expect("data-client").to_owned(), t.attr("data-target").expect("data-target"));
        let previous = cells.insert((key.0, key.1.to_owned()), verdict);
        assert!(previous.is_none(), "cell drawn twice: {t:?}");
    }
    cells
}

fn assert_cells(tags: &[Tag], dom: &str, m: &Value) {
    let drawn = drawn_cells(tags);
    let expected = expected_cells(m);
    assert_eq!(dom.matches("class=\"edge ").count(), expected.len(), "edge cells in the dumped DOM");
    assert_eq!(drawn, expected, "cells drawn vs cells the JSON implies");
    let json_partial = m["edges"].as_array().expect("edges").iter().any(|e| e["verdict"] == "partial");
    let drawn_partial = drawn.values().any(|v| *v == "partial");
    assert_eq!(drawn_partial, json_partial, "partial cells exist iff the JSON has partial edges");
    for ((client, target), routes) in partial_routes(m) {
        let cell = tags.iter().find(|t| {
            t.has_class("partial") && t.attr("data-client") == Some(&client) && t.attr("data-target") == Some(&target)
        });
        let Some(cell) = cell else { continue }; // an allow on another edge of the same cell wins
        let title = cell.attr("title").unwrap_or_default();
        assert!(routes.iter().all(|r| title.contains(r.as_str())), "tooltip {title:?} lacks one of {routes:?}");
    }
}

const FETCHING_TAGS: [&str; 10] =
    ["link", "img", "iframe", "frame", "object", "embed", "video", "audio", "source", "base"];
const URL_ATTRS: [&str; 7] = ["src", "href", "srcset", "action", "formaction", "poster", "background"];

fn assert_no_fetch(tags: &[Tag], source: &str) {
    for t in tags {
        assert!(!FETCHING_TAGS.contains(&t.name.as_str()), "page has a <{}> element: {t:?}", t.name);
        for (k, v) in &t.attrs {
            assert!(!URL_ATTRS.contains(&k.as_str()), "page has a {k}= attribute ({v:?}) on <{}>", t.name);
        }
    }
    let lower = source.to_ascii_lowercase();
    for needle in ["<link", "<script src", "@import", "url(", "http://", "https://", "//fonts", "<img"] {
        assert!(!lower.contains(needle), "page source outside the data contains {needle:?}");
    }
}

/// The page source without the embedded data, which may legitimately hold
/// any text (labels, CIDRs): the fetch checks apply to the markup only.
fn markup_only(source: &str) -> String {
    let open = "id=\"meshc-data\">";
    let start = source.find(open).expect("data element") + open.len();
    let end = start + source[start..].find("</script>").expect("data element ends");
    format!("{}{}", &source[..start], &source[end..])
}

fn embedded_json(source: &str) -> Value {
    let open = "id=\"meshc-data\">";
    let start = source.find(open).expect("data element") + open.len();
    let end = start + source[start..].find("</script>").expect("data element ends");
    serde_json::from_str(&source[start..end]).expect("embedded data is JSON")
}

/// Renders `page` in Chromium and checks it against the matrix JSON `m`.
fn check_page(browser: &Path, page_source: &str, m: &Value) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("matrix.html");
    std::fs::write(&page, page_source).expect("write page");
    // A version 2 page embeds grouped rows; the checks below read one edge per class.
    let embedded = embedded_json(page_source);
    let embedded = if embedded["version"] == json!(2) { per_class(&embedded) } else { embedded };
    assert_eq!(&embedded, m, "the page embeds the matrix JSON (read one edge per class)");
    assert_no_fetch(&tags(&markup_only(page_source)), &markup_only(page_source));
    let dom = dump_dom(browser, &page, dir.path());
    let tags = tags(&dom);
    assert_rendered(&tags);
    assert_namespace_groups(&tags, m);
    assert_cells(&tags, &dom, m);
    assert_no_fetch(&tags, "");
    dom
}

fn page_from(title: &str, m: &Value) -> String {
    format!("{}{}{}", html::head(title), html::escape_script(&m.to_string()), html::tail())
}

// ---------------------------------------------------------------- tests

fn meshc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meshc")).args(args).env("NO_COLOR", "1").output().expect("meshc runs");
    assert!(out.status.success(), "meshc {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("meshc output is UTF-8")
}

#[test]
fn booksapp_matrix_renders_every_allowed_cell_in_chromium() {
    let Some(browser) = browser_or_skip("booksapp_matrix_renders_every_allowed_cell_in_chromium") else { return };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/booksapp-rest");
    let repo = repo.to_str().expect("UTF-8 path");
    let page = meshc(&["matrix", repo, "--format", "html"]);
    let grouped: Value = serde_json::from_str(&meshc(&["matrix", repo, "--format", "json"])).expect("matrix JSON");
    assert_eq!(embedded_json(&page), grouped, "the page embeds `matrix --format json` unchanged");
    let m = per_class(&grouped);
    assert!(!m["edges"].as_array().expect("edges").is_empty(), "booksapp has allowed edges");
    check_page(&browser, &page, &m);
}

/// A multicluster matrix (issue 20): the page groups columns by cluster
/// and namespace, and draws the calls across clusters (east's pods into
/// west's emoji and voting through the mirrors) as cells like any other.
#[test]
fn multicluster_matrix_groups_by_cluster_in_chromium() {
    let Some(browser) = browser_or_skip("multicluster_matrix_groups_by_cluster_in_chromium") else { return };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies-examples/emojivoto-multicluster/gateway");
    let repo = repo.to_str().expect("UTF-8 path");
    let page = meshc(&["matrix", repo, "--format", "html"]);
    let grouped: Value = serde_json::from_str(&meshc(&["matrix", repo, "--format", "json"])).expect("matrix JSON");
    assert_eq!(grouped["clusters"], json!(["east", "west"]));
    let across = grouped["edges"].as_array().expect("edges").iter().filter(|e| e.get("via").is_some()).count();
    assert!(across >= 2, "calls across clusters into emoji and voting: {grouped}");
    let m = per_class(&grouped);
    let expected: BTreeSet<String> = ["east / emojivoto", "west / emojivoto"].map(str::to_owned).into();
    assert_eq!(workload_namespaces(&m), expected);
    check_page(&browser, &page, &m);
}

/// Labels that would break out of the data element or attributes if any
/// escaping were missing, a `*` column, duplicate and overlapping edges, a
/// workload without ports, and a client the class list lacks.
fn hostile_fixture() -> Value {
    let ns = "ns-\"q\"&<b>";
    let web = format!("Deployment/{ns}/web");
    let workload = |name: &str, ns: &str, ports: &[u16]| {
        json!({"workload": format!("Deployment/{ns}/{name}"), "kind": "Deployment", "namespace": ns, "name": name,
            "meshed": !ports.is_empty(), "ports": ports})
    };
    let edge = |client: Value, workload: &str, port: u16, routes: &[&str]| {
        let verdict = if routes.is_empty() { "allow" } else { "partial" };
        let mut e = json!({"client": client, "target": {"workload": workload, "port": port}, "verdict": verdict});
        if !routes.is_empty() {
            e["routes"] = json!(routes);
        }
        e
    };
    let api = "Deployment/shop/api";
    json!({"version": 1,
      "classes": [
        {"id": 0, "label": "kubelet", "members": [{"kind": "kubelet", "name": "kubelet", "label": "kubelet"}]},
        {"id": 1, "members": [{"kind": "identity", "name": "</script><!-- <script>", "label": "id </script><!--"}]},
        {"id": 2, "label": "web \"x\" & <b>y</b>", "members": [
          {"kind": "workload", "name": "web", "namespace": ns, "label": "Deployment/ns/web"},
          {"kind": "workload", "name": "api", "namespace": "shop", "label": api}]},
        {"id": 3, "members": [{"kind": "workload", "name": "api", "namespace": "shop", "label": api}]}],
      "workloads": [workload("web", ns, &[80, 9090]), workload("api", "shop", &[8080]), workload("idle", "empty", &[])],
      "edges": [
        edge(json!(2), api, 8080, &[]),
        edge(json!(2), api, 8080, &[]),
        edge(json!(0), api, 8080, &["default:probe"]),
        edge(json!(3), api, 8080, &["r </script>"]),
        edge(json!(3), api, 8080, &[]),
        edge(json!(9), api, 8080, &[]),
        edge(json!("*"), &web, 9090, &[]),
        edge(json!(1), &web, 80, &["a", "b"])],
      "summary": {"classes": 4, "workloads": 3, "ports": 3, "edges": 8}})
}

#[test]
fn hostile_labels_star_columns_and_duplicates_render_in_chromium() {
    let Some(browser) = browser_or_skip("hostile_labels_star_columns_and_duplicates_render_in_chromium") else {
        return;
    };
    let title = "t </title><script>alert(1)</script> & \"q\"";
    let m = hostile_fixture();
    let dom = check_page(&browser, &page_from(title, &m), &m);
    let text = "t &lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; \"q\"";
    assert!(dom.contains(&format!("<h1>{text}</h1>")), "the title is shown as text");
    assert_eq!(expected_cells(&m).len(), 10, "fixture sanity: 5 rows in the * column + 5 other cells");
}

/// Enough cells (about 4,500) that a per-cell DOM approach would show, with
/// every kind of edge spread across several namespaces.
fn large_fixture() -> Value {
    let namespaces = ["alpha", "beta", "gamma"];
    let classes: Vec<Value> = (0..60)
        .map(|c| {
            let ns = namespaces[c % 3];
            json!({"id": c, "members": [{"kind": "workload", "name": format!("w{c}"), "namespace": ns,
                "label": format!("Deployment/{ns}/w{c}")}]})
        })
        .collect();
    let workloads: Vec<Value> = (0..30)
        .map(|w| {
            let ns = namespaces[w % 3];
            json!({"workload": format!("Deployment/{ns}/w{w}"), "kind": "Deployment", "namespace": ns,
                "name": format!("w{w}"), "meshed": true, "ports": [8080, 8081, 9090]})
        })
        .collect();
    let mut edges = Vec::new();
    for (w, wl) in workloads.iter().enumerate() {
        for port in [8080, 8081, 9090] {
            let target = json!({"workload": wl["workload"], "port": port});
            if w.is_multiple_of(10) && port == 9090 {
                edges.push(json!({"client": "*", "target": target, "verdict": "allow"}));
                continue;
            }
            for c in (0..60).filter(|c| !(c + w + port as usize).is_multiple_of(4)) {
                edges.push(match c % 5 {
                    0 => json!({"client": c, "target": target, "verdict": "partial", "routes": [format!("r{c}")]}),
                    _ => json!({"client": c, "target": target, "verdict": "allow"}),
                });
            }
        }
    }
    let n = edges.len();
    json!({"version": 1, "classes": classes, "workloads": workloads, "edges": edges,
        "summary": {"classes": 60, "workloads": 30, "ports": 90, "edges": n}})
}

#[test]
fn a_few_thousand_cells_render_in_chromium() {
    let Some(browser) = browser_or_skip("a_few_thousand_cells_render_in_chromium") else { return };
    let m = large_fixture();
    assert!(expected_cells(&m).len() > 3000, "fixture sanity: a few thousand cells");
    check_page(&browser, &page_from("large", &m), &m);
}
