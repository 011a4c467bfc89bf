//! Header, query-parameter and regex matching shared by HTTP and gRPC routes.

use crate::client::RequestView;
use crate::config::{HeaderMatch, QueryParamMatch, StringMatch};
use regex::Regex;
use std::cell::RefCell;
use std::collections::HashMap;

/// Whether `pattern` matches all of `text`. Like the proxy, this takes the
/// leftmost-first match and requires it to span the whole text; it does not
/// re-anchor the pattern, so `a|ab` does not match "ab". An invalid pattern
/// never matches (the proxy would reject the whole config; meshc reports it
/// at lowering time).
pub(crate) fn regex_matches_whole(pattern: &str, text: &str) -> bool {
    with_regex(pattern, |re| re.and_then(|re| re.find(text)).is_some_and(|m| m.start() == 0 && m.end() == text.len()))
}

/// Whether `pattern` compiles as the proxy compiles route regexes (Rust
/// `regex` syntax and default size limits). Lowering should reject what
/// fails here; route matching treats such a pattern as never matching.
pub fn validate_regex(pattern: &str) -> Result<(), String> {
    Regex::new(pattern).map(drop).map_err(|e| e.to_string())
}

/// Compiled patterns per thread. Decisions are called per request (proxy)
/// and per probe (analysis) over a small, fixed set of patterns, so caching
/// avoids recompiling the same regex thousands of times. Bounded so a
/// stream of distinct configs cannot grow it without limit.
fn with_regex<T>(pattern: &str, f: impl FnOnce(Option<&Regex>) -> T) -> T {
    const MAX_CACHED: usize = 512;
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(pattern.to_string(), Regex::new(pattern).ok());
        }
        f(cache.get(pattern).and_then(Option::as_ref))
    })
}

/// A header matches if any value of the (case-insensitively named) header
/// does.
pub(crate) fn header_matches<R: RequestView + ?Sized>(m: &HeaderMatch, req: &R) -> bool {
    match &m.value {
        StringMatch::Exact(exact) => req.any_header_value(&m.name, |v| v == exact),
        // The proxy regex-matches only values that are visible ASCII (it
        // cannot view other header bytes as text).
        StringMatch::Regex(re) => req.any_header_value(&m.name, |v| is_visible_ascii(v) && regex_matches_whole(re, v)),
    }
}

fn is_visible_ascii(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// A query parameter matches if any decoded `name=value` pair with that
/// exact (case-sensitive) name has a matching value.
pub(crate) fn query_param_matches<R: RequestView + ?Sized>(m: &QueryParamMatch, req: &R) -> bool {
    let Some(query) = req.query() else {
        return false;
    };
    decode_query(query).any(|(name, value)| {
        name == m.name
            && match &m.value {
                StringMatch::Exact(exact) => value == *exact,
                StringMatch::Regex(re) => regex_matches_whole(re, &value),
            }
    })
}

/// `application/x-www-form-urlencoded` pairs: `&`-separated, empty pieces
/// skipped, split at the first `=` (a bare `name` has the value ""), `+` is
/// a space and `%XX` a byte; invalid UTF-8 is replaced, not rejected.
fn decode_query(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(name), form_decode(value))
    })
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match percent_byte(bytes.get(i + 1..i + 3)) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                // A '%' not followed by two hex digits stays literal.
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_byte(hex: Option<&[u8]>) -> Option<u8> {
    let hex = std::str::from_utf8(hex?).ok()?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        decode_query(q).collect()
    }

    #[test]
    fn query_decoding_follows_form_urlencoding() {
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(pairs("a=1&&b"), vec![p("a", "1"), p("b", "")]);
        assert_eq!(pairs("x=a+b%2Fc&y=%zz%4"), vec![p("x", "a b/c"), p("y", "%zz%4")]);
        assert_eq!(pairs("k=v=w"), vec![p("k", "v=w")]);
    }

    #[test]
    fn regex_uses_leftmost_first_whole_span() {
        assert!(regex_matches_whole("/foo/\\d+", "/foo/123"));
        assert!(!regex_matches_whole("/foo/\\d+", "/x/foo/123"));
        assert!(!regex_matches_whole("bar*", "barro"));
        // Leftmost-first picks "a", which does not span "ab".
        assert!(!regex_matches_whole("a|ab", "ab"));
        assert!(!regex_matches_whole("(", "("));
    }
}
