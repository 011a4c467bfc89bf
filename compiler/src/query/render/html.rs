//! `meshc matrix --format html`: one self-contained page. The caller writes
//! `head`, the matrix JSON through `escape_script`, then `tail`; the inline
//! script renders the grid from that JSON, so the Rust side never builds
//! per-cell markup and the JSON can be streamed as it is computed.
//!
//! Nothing on the page is fetched: styles and script are inline and there
//! are no fonts, images or links, so it opens offline and from `file://`.

/// Everything up to and including the opening `<script type="application/json" id="meshc-data">`.
pub fn head(title: &str) -> String {
    let title = escape_html(title);
    [HEAD_START, &title, HEAD_STYLE, &title, HEAD_BODY].concat()
}

/// Everything after the JSON: `</script>` then the rendering script and closing tags.
pub fn tail() -> &'static str {
    TAIL
}

/// Makes a JSON text safe inside a `<script>` element by writing every `<`
/// as `\u003c`. In valid JSON `<` only occurs inside strings, where the
/// escape means the same character, so `JSON.parse` sees the same value;
/// and with no `<` left, neither `</script` nor `<!--` can end or change the
/// element. Escaping the single character (rather than `</` and `<!--`)
/// stays correct when the JSON is split into chunks at any byte, and
/// `<\!--` would not be valid JSON.
pub fn escape_script(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const HEAD_START: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>"#;

// Colours are from the Okabe-Ito palette (distinguishable with every common
// colour-vision deficiency), and each verdict also has its own pattern so
// the grid reads in greyscale too.
const HEAD_STYLE: &str = r#"</title>
<style>
:root { --allow: #0072B2; --partial: #E69F00; --open: #56B4E9; --line: #d4d4d4; --head: #f4f4f4; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; background: #fff; }
header { padding: 10px 16px 6px; border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0 0 4px; word-break: break-all; }
#summary { margin: 0; color: #444; }
#summary b { color: #1b1b1b; }
#controls { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; padding: 6px 16px; }
#controls input { font: inherit; padding: 2px 6px; width: 16em; }
#legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 0; padding: 0; list-style: none; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -3px; margin-right: 4px;
  border: 1px solid #888; }
.allow { background: var(--allow); }
.partial { background: repeating-linear-gradient(135deg, var(--partial) 0 3px, #fff 3px 6px); }
.depends { background: repeating-linear-gradient(45deg, #CC79A7 0 2px, #fff 2px 5px); }
.open { background: radial-gradient(circle, #fff 1.5px, var(--open) 2px) 0 0 / 6px 6px; }
.denied { background: #fff; }
#status { padding: 0 16px 6px; min-height: 1.4em; color: #333; white-space: pre-wrap; }
#status.error { color: #b00020; font-weight: 600; }
#matrix { overflow: auto; width: fit-content; max-width: calc(100vw - 32px); max-height: calc(100vh - 120px);
  margin: 0 16px 16px; border: 1px solid var(--line); }
table { border-collapse: separate; border-spacing: 0; }
th, td { border-right: 1px solid var(--line); border-bottom: 1px solid var(--line); padding: 0; }
thead th { position: sticky; background: var(--head); z-index: 2; font-weight: 600; }
thead tr:first-child th { top: 0; height: 24px; padding: 2px 6px; white-space: nowrap; }
thead tr:nth-child(2) th { top: 24px; }
th.corner { left: 0; z-index: 4; text-align: left; vertical-align: bottom; font-weight: 400; color: #555; }
th.ns-group { text-align: left; border-left: 2px solid #555; }
th.target { vertical-align: bottom; padding: 4px 0; font-weight: 400; }
th.target span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; display: inline-block;
  padding: 0 2px; }
th.client, th.row-ns { position: sticky; left: 0; z-index: 1; background: var(--head); text-align: left;
  white-space: nowrap; max-width: 28em; overflow: hidden; text-overflow: ellipsis; padding: 1px 8px; font-weight: 400; }
th.row-ns { font-weight: 600; background: #e6e6e6; border-top: 2px solid #555; }
td.row-ns-fill { background: #e6e6e6; border-top: 2px solid #555; }
td { width: 18px; min-width: 18px; height: 18px; }
td.gs, th.gs { border-left: 2px solid #555; }
td.np { background: #ececec; }
th.np span { font-style: italic; color: #555; }
tbody tr:hover th.client { background: #dcecf7; }
td.edge:hover { outline: 2px solid #000; outline-offset: -2px; }
.nothing { padding: 12px; color: #555; }
</style>
</head>
<body>
<header>
<h1>"#;

const HEAD_BODY: &str = r#"</h1>
<p id="summary">Allowed edges from client classes (rows) to workload ports (columns).</p>
</header>
<div id="controls">
<label>Clients <input id="filter-clients" type="search" placeholder="filter rows"></label>
<label>Targets <input id="filter-targets" type="search" placeholder="filter columns"></label>
<ul id="legend">
<li><span class="swatch allow"></span>allowed</li>
<li><span class="swatch partial"></span>allowed on some routes only (hover for the routes)</li>
<li><span class="swatch depends"></span>depends on the pod CIDR (hover for the condition)</li>
<li><span class="swatch open"></span>allowed: nothing enforced on that port</li>
<li><span class="swatch denied"></span>denied</li>
</ul>
</div>
<div id="status"></div>
<div id="matrix" data-state="pending"><noscript><p class="nothing">This page draws the matrix with JavaScript;
the data is in the meshc-data element of its source.</p></noscript></div>
<script type="application/json" id="meshc-data">"#;

// Builds the grid as one string and assigns it once, the cheapest way to
// make thousands of cells (about half a second for 5,000 in headless
// Chromium, most of it layout). Filters re-render after a short pause
// instead of on every key.
// Markup strings never spell the cell or group class next to its quote, so
// searching the dumped DOM for `class="edge` or `class="ns-group"` finds
// elements only, not this script's source.
const TAIL: &str = r#"</script>
<script>
(function () {
  "use strict";
  var OUTSIDE = "outside the repository / cluster";
  var NS_GROUP = "ns-group";
  var root = document.getElementById("matrix");
  var status = document.getElementById("status");

  function fail(message) {
    status.className = "error";
    status.textContent = message;
    root.setAttribute("data-state", "error");
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function byName(a, b) { return a < b ? -1 : a > b ? 1 : 0; }

  // In a multicluster repository (data.clusters) groups are CLUSTER / NAMESPACE.
  function inCluster(cluster, ns) { return cluster ? cluster + " / " + ns : ns; }

  function namespaceOfWorkload(ref) {
    var parts = String(ref).split("/");
    if (parts.length === 4) return inCluster(parts[0], parts[2]);
    return parts.length === 3 ? parts[1] : OUTSIDE;
  }

  function classNamespace(c) {
    var members = c.members || [];
    for (var i = 0; i < members.length; i++) {
      if (members[i].namespace) return inCluster(c.cluster, members[i].namespace);
    }
    return c.cluster ? inCluster(c.cluster, OUTSIDE) : OUTSIDE;
  }

  function lower(parts) { return parts.join("\n").toLowerCase(); }

  function buildTargets(data) {
    var list = [], seen = {};
    function add(t) { if (!seen[t.key]) { seen[t.key] = t; list.push(t); } }
    (data.workloads || []).forEach(function (w) {
      var ports = w.ports || [];
      var meshed = w.meshed === false ? " (not meshed)" : "", ns = inCluster(w.cluster, w.namespace);
      if (ports.length === 0) {
        add({ key: w.workload, ns: ns, label: w.name + meshed + " (no ports)", noPorts: true,
          text: lower([w.workload, ns]) });
      }
      ports.forEach(function (p) {
        var key = w.workload + ":" + p;
        add({ key: key, ns: ns, label: w.name + ":" + p + meshed, text: lower([key, ns]) });
      });
    });
    (data.edges || []).forEach(function (e) {
      var key = e.target.workload + ":" + e.target.port, ns = namespaceOfWorkload(e.target.workload);
      add({ key: key, ns: ns, label: key, text: lower([key, ns]) });
    });
    return list;
  }

  function memberLabels(c) {
    return (c.members || []).map(function (m) { return m.label || m.name || m.kind; });
  }

  // The JSON may omit a class label; name it like meshc's text output does.
  function classLabel(c, labels) {
    if (c.label) return c.label;
    if (labels.length === 0) return "class " + c.id;
    return labels[0] + (labels.length > 1 ? " (+" + (labels.length - 1) + " more)" : "");
  }

  // Version 2 writes a port's edges that differ only in the client as one
  // row naming a set of classes (data.clientSets); one edge per class again.
  function perClass(data) {
    var out = [], sets = data.clientSets || [];
    (data.edges || []).forEach(function (e) {
      var ids = e.clients === "*" ? ["*"] : sets[e.clients] || [];
      var add = function (c) {
        out.push({ client: c, target: e.target, verdict: e.verdict, routes: e.routes, condition: e.condition,
          via: e.via });
      };
      ids.forEach(function (c) {
        // [first, last]: a run of consecutive class ids.
        if (Array.isArray(c)) for (var k = c[0]; k <= c[1]; k++) add(k);
        else add(c);
      });
    });
    return out;
  }

  function buildClients(data) {
    var list = [], seen = {};
    (data.classes || []).forEach(function (c) {
      var labels = memberLabels(c), ns = classNamespace(c), label = classLabel(c, labels);
      seen[c.id] = true;
      list.push({ id: String(c.id), label: label, ns: ns, members: labels, text: lower([label, ns].concat(labels)) });
    });
    (data.edges || []).forEach(function (e) {
      if (e.client === "*" || seen[e.client]) return;
      seen[e.client] = true;
      var label = "class " + e.client;
      list.push({ id: String(e.client), label: label, ns: OUTSIDE, members: [], text: label });
    });
    return list;
  }

  // Allow on any route wins over partial; partial route lists are merged.
  function merge(a, b) {
    if (!a) return b;
    if (!b) return a;
    if (a.verdict === "allow" || b.verdict === "allow") return { verdict: "allow", star: a.star || b.star, routes: [], via: a.via || b.via };
    if (a.verdict === "depends" || b.verdict === "depends") return a.verdict === "depends" ? a : b;
    return { verdict: "partial", star: a.star || b.star, routes: a.routes.concat(b.routes) };
  }

  function buildCells(data) {
    var specific = {}, star = {};
    (data.edges || []).forEach(function (e) {
      var key = e.target.workload + ":" + e.target.port;
      var verdict = e.verdict === "partial" || e.verdict === "depends" ? e.verdict : "allow";
      var cell = { verdict: verdict, star: e.client === "*", routes: e.routes || [], condition: e.condition,
        via: e.via };
      if (e.client === "*") star[key] = merge(star[key], cell);
      else specific[e.client + "\u0000" + key] = merge(specific[e.client + "\u0000" + key], cell);
    });
    return function (client, target) { return merge(specific[client + "\u0000" + target], star[target]); };
  }

  function groupBy(items, last) {
    var groups = {}, names = [];
    items.forEach(function (it) {
      if (!groups[it.ns]) { groups[it.ns] = []; names.push(it.ns); }
      groups[it.ns].push(it);
    });
    names.sort(function (a, b) { return a === last ? 1 : b === last ? -1 : byName(a, b); });
    return names.map(function (n) { return { ns: n, items: groups[n] }; });
  }

  function matches(filter) {
    return function (it) { return filter === "" || it.text.indexOf(filter) >= 0; };
  }

  function headerRows(colGroups) {
    var groups = "", targets = "";
    colGroups.forEach(function (g) {
      groups += '<th class="' + NS_GROUP + '" scope="colgroup" data-namespace="' + esc(g.ns) + '" colspan="' +
        g.items.length + '">' + esc(g.ns) + "</th>";
      g.items.forEach(function (t, i) {
        var cls = "target" + (i === 0 ? " gs" : "") + (t.noPorts ? " np" : "");
        targets += '<th class="' + cls + '" data-target="' + esc(t.key) + '" title="' + esc(t.key) + '"><span>' +
          esc(t.label) + "</span></th>";
      });
    });
    var corner = '<th class="corner" rowspan="2">clients \u2193 \u00b7 targets \u2192</th>';
    return "<thead><tr>" + corner + groups + "</tr><tr>" + targets + "</tr></thead>";
  }

  function cellTitle(client, target, cell) {
    var head = client.label + " \u2192 " + target.key + (cell.via ? " via " + cell.via : "") + "\n";
    if (cell.verdict === "depends") return head + "depends: " + cell.condition;
    if (cell.verdict === "partial") return head + "allowed on these routes only: " + cell.routes.join(", ");
    return head + (cell.star ? "allowed: nothing is enforced on this port" : "allowed");
  }

  function cellHtml(client, target, cell, groupStart) {
    var more = (groupStart ? " gs" : "") + (target.noPorts ? " np" : "");
    if (!cell) return more ? '<td class="' + more.slice(1) + '"></td>' : "<td></td>";
    var cls = "edge " + cell.verdict + (cell.star && cell.verdict === "allow" ? " open" : "") + more;
    return '<td class="' + cls + '" data-client="' + esc(client.id) + '" data-target="' + esc(target.key) +
      '" title="' + esc(cellTitle(client, target, cell)) + '"></td>';
  }

  function bodyRows(rowGroups, cols, cellAt) {
    var out = [];
    rowGroups.forEach(function (g) {
      out.push('<tr class="row-group"><th class="row-ns" scope="rowgroup" data-row-namespace="' + esc(g.ns) + '">' +
        esc(g.ns) + '</th><td class="row-ns-fill" colspan="' + cols.length + '"></td></tr>');
      g.items.forEach(function (c) {
        var row = '<tr><th class="client" scope="row" title="' + esc(c.members.join("\n") || c.label) + '">' +
          esc(c.label) + "</th>";
        cols.forEach(function (col) { row += cellHtml(c, col.target, cellAt(c.id, col.target.key), col.groupStart); });
        out.push(row + "</tr>");
      });
    });
    return "<tbody>" + out.join("") + "</tbody>";
  }

  function flatColumns(colGroups) {
    var cols = [];
    colGroups.forEach(function (g) {
      g.items.forEach(function (t, i) { cols.push({ target: t, groupStart: i === 0 }); });
    });
    return cols;
  }

  function render(model, clientFilter, targetFilter) {
    var rowGroups = groupBy(model.clients.filter(matches(clientFilter)), OUTSIDE);
    var colGroups = groupBy(model.targets.filter(matches(targetFilter)), OUTSIDE);
    if (rowGroups.length === 0 || colGroups.length === 0) {
      root.innerHTML = '<p class="nothing">No ' + (rowGroups.length === 0 ? "client class" : "target") +
        " matches the filter.</p>";
      return;
    }
    var cols = flatColumns(colGroups);
    root.innerHTML = "<table>" + headerRows(colGroups) + bodyRows(rowGroups, cols, model.cellAt) + "</table>";
  }

  function showSummary(data) {
    var s = data.summary || {};
    var parts = [["classes", "client classes"], ["workloads", "workloads"], ["ports", "ports"],
      ["edges", "allowed edges"]];
    document.getElementById("summary").innerHTML = parts.map(function (p) {
      return "<b>" + esc(s[p[0]] === undefined ? "?" : s[p[0]]) + "</b> " + p[1];
    }).join(" \u00b7 ");
  }

  function wireFilters(model) {
    var clients = document.getElementById("filter-clients"), targets = document.getElementById("filter-targets");
    var timer = null;
    function apply() {
      timer = null;
      render(model, clients.value.trim().toLowerCase(), targets.value.trim().toLowerCase());
    }
    function later() { if (timer !== null) clearTimeout(timer); timer = setTimeout(apply, 150); }
    clients.addEventListener("input", later);
    targets.addEventListener("input", later);
  }

  function wireStatus() {
    root.addEventListener("mouseover", function (ev) {
      var el = ev.target.closest ? ev.target.closest("td, th") : null;
      status.className = "";
      status.textContent = el && el.title ? el.title.replace(/\n/g, "  \u00b7  ") : "";
    });
  }

  var data;
  try {
    data = JSON.parse(document.getElementById("meshc-data").textContent);
  } catch (e) {
    return fail("The matrix data is not valid JSON: " + e.message);
  }
  if (!data || (data.version !== 1 && data.version !== 2)) {
    return fail("Unsupported matrix data version: " + (data && data.version));
  }
  if (data.version === 2) data.edges = perClass(data);
  var model = { clients: buildClients(data), targets: buildTargets(data), cellAt: buildCells(data) };
  showSummary(data);
  render(model, "", "");
  wireFilters(model);
  wireStatus();
  root.setAttribute("data-state", "ok");
})();
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_escape_leaves_no_angle_bracket_and_keeps_the_value() {
        let json = r#"{"a":"</script><!-- x"}"#;
        let escaped = escape_script(json);
        assert!(!escaped.contains('<'));
        assert_eq!(escaped, r#"{"a":"\u003c/script>\u003c!-- x"}"#);
    }

    #[test]
    fn title_is_html_escaped_in_title_and_heading() {
        let h = head(r#"<b>"a" & 'b'</b>"#);
        assert_eq!(h.matches("&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;").count(), 2);
        assert!(h.ends_with(r#"<script type="application/json" id="meshc-data">"#));
    }
}
