//! Path matching. Each match yields the matched length, which is all that
//! route precedence compares (an Exact and a Prefix of equal length tie).

use super::fields::regex_matches_whole;
use crate::config::PathMatch;

/// The length this path match contributes to precedence, or `None` if the
/// path does not match.
pub(crate) fn match_len(m: &PathMatch, path: &str) -> Option<usize> {
    match m {
        PathMatch::Exact(exact) => (exact == path).then_some(exact.len()),
        // A regex scores the whole request path, not the pattern's length.
        PathMatch::Regex(re) => regex_matches_whole(re, path).then_some(path.len()),
        PathMatch::Prefix(prefix) => prefix_len(prefix, path),
    }
}

/// Segment-aware prefix match, as the proxy does it: trailing slashes on
/// both sides are ignored, and the prefix must end at a segment boundary.
fn prefix_len(prefix: &str, path: &str) -> Option<usize> {
    // "/" is special-cased by the proxy: it matches any path (even one that
    // does not start with '/') and always scores 1.
    if prefix == "/" {
        return Some(1);
    }
    let prefix = prefix.trim_end_matches('/');
    let rest = path.trim_end_matches('/').strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(prefix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes_on_prefix_and_path_are_ignored() {
        assert_eq!(prefix_len("/foo/", "/foo"), Some(4));
        assert_eq!(prefix_len("/foo", "/foo///"), Some(4));
        assert_eq!(prefix_len("/foo", "/foobar"), None);
    }

    #[test]
    fn an_all_slash_prefix_other_than_root_scores_zero() {
        // "//" trims to "", which matches any path starting with '/' but
        // scores below the root prefix; lowering should not emit it.
        assert_eq!(prefix_len("//", "/x"), Some(0));
    }
}
