//! Route and backend filters: header modifiers and redirects.

use http::header::{HeaderName, LOCATION};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri};
use mesh_proxy_api::config::{HeaderModifier, HttpFilter};

use crate::http_util::{Answer, BoxBody, empty};

/// Applies `set`, then `add`, then `remove`, as Gateway API specifies.
/// A name or value that is not valid HTTP is skipped (config is verified
/// upstream; a bad entry must not take the request down).
pub fn modify_headers(headers: &mut HeaderMap, m: &HeaderModifier) {
    let pair = |(n, v): &(String, String)| {
        let name = HeaderName::from_bytes(n.as_bytes()).ok()?;
        let value = HeaderValue::from_str(v).ok()?;
        Some((name, value))
    };
    for (name, value) in m.set.iter().filter_map(pair) {
        headers.insert(name, value);
    }
    for (name, value) in m.add.iter().filter_map(pair) {
        headers.append(name, value);
    }
    for name in &m.remove {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
}

/// What the filters of a rule and its backend do to one request.
#[derive(Default)]
pub struct Applied<'a> {
    /// Header changes for the response, in order.
    pub response: Vec<&'a HeaderModifier>,
}

/// Runs request-side filters in order; a redirect answers at once.
pub fn apply_request<'a>(
    filters: impl IntoIterator<Item = &'a HttpFilter>,
    uri: &Uri,
    host: Option<&str>,
    headers: &mut HeaderMap,
) -> Result<Applied<'a>, Answer> {
    let mut applied = Applied::default();
    for f in filters {
        match f {
            HttpFilter::RequestHeaderModifier(m) => modify_headers(headers, m),
            HttpFilter::ResponseHeaderModifier(m) => applied.response.push(m),
            HttpFilter::RequestRedirect { scheme, hostname, path, port, status } => {
                let to = Redirect {
                    scheme: scheme.as_deref(),
                    hostname: hostname.as_deref(),
                    path: path.as_deref(),
                    port: *port,
                };
                return Err(Box::new(redirect(uri, host, &to, *status)));
            }
        }
    }
    Ok(applied)
}

/// The redirect response. Unset parts keep the request's: its host (and
/// port, unless the hostname or scheme changes), path and query.
struct Redirect<'a> {
    scheme: Option<&'a str>,
    hostname: Option<&'a str>,
    path: Option<&'a str>,
    port: Option<u16>,
}

fn redirect(uri: &Uri, host: Option<&str>, to: &Redirect<'_>, status: u16) -> Response<BoxBody> {
    let Redirect { scheme, hostname, path, port } = *to;
    let (req_host, req_port) = match host.map(|h| h.rsplit_once(':').map_or((h, None), |(h, p)| (h, Some(p)))) {
        Some((h, p)) => (h, p),
        None => ("", None),
    };
    let scheme = scheme.unwrap_or("http");
    let port = match (port, hostname, scheme == "http") {
        (Some(p), _, _) => Some(p.to_string()),
        (None, None, true) => req_port.map(str::to_string),
        _ => None,
    };
    let mut location = format!("{scheme}://{}", hostname.unwrap_or(req_host));
    if let Some(p) = port {
        location.push(':');
        location.push_str(&p);
    }
    location.push_str(path.unwrap_or(uri.path()));
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderModifier {
        let pairs = |p: &[(&str, &str)]| p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        HeaderModifier { set: pairs(set), add: pairs(add), remove: remove.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn header_modifier_sets_adds_and_removes() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("old"));
        h.insert("x-gone", HeaderValue::from_static("1"));
        modify_headers(&mut h, &hm(&[("x-a", "new"), ("bad name", "v")], &[("x-b", "1"), ("x-b", "2")], &["x-gone"]));
        assert_eq!(h["x-a"], "new");
        assert_eq!(h.get_all("x-b").iter().count(), 2);
        assert!(!h.contains_key("x-gone"));
    }

    #[test]
    fn redirect_keeps_unset_parts_and_stops_later_filters() {
        let uri: Uri = "/old?q=1".parse().unwrap();
        let filters = [
            HttpFilter::RequestRedirect {
                scheme: None,
                hostname: None,
                path: Some("/new".into()),
                port: None,
                status: 301,
            },
            HttpFilter::RequestHeaderModifier(hm(&[("x-never", "1")], &[], &[])),
        ];
        let mut h = HeaderMap::new();
        let resp = apply_request(&filters, &uri, Some("web.test:8080"), &mut h).err().unwrap();
        assert_eq!(resp.status(), 301);
        assert_eq!(resp.headers()[LOCATION], "http://web.test:8080/new?q=1");
        assert!(!h.contains_key("x-never"));

        let to_https = [HttpFilter::RequestRedirect {
            scheme: Some("https".into()),
            hostname: Some("example.com".into()),
            path: None,
            port: None,
            status: 302,
        }];
        let resp = apply_request(&to_https, &uri, Some("web.test:8080"), &mut h).err().unwrap();
        assert_eq!(resp.headers()[LOCATION], "https://example.com/old?q=1");
    }

    #[test]
    fn response_modifiers_are_collected_in_order() {
        let f = [
            HttpFilter::ResponseHeaderModifier(hm(&[("x-1", "a")], &[], &[])),
            HttpFilter::RequestHeaderModifier(hm(&[("x-req", "1")], &[], &[])),
        ];
        let mut h = HeaderMap::new();
        let applied = apply_request(&f, &"/".parse().unwrap(), None, &mut h).ok().unwrap();
        assert_eq!(applied.response.len(), 1);
        assert_eq!(h["x-req"], "1");
    }
}
