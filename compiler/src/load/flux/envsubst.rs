//! Flux's post-build variable substitution on one string, with the rules of
//! kustomize-controller (drone/envsubst, non-strict): `${VAR}`, `${VAR:=d}`
//! and `${VAR:-d}` (the default when VAR is unset or empty), `${VAR=d}` and
//! `${VAR-d}` (the default only when VAR is unset), `$${VAR}` for a literal
//! `${VAR}`. A plain `$VAR` is left alone: Flux documents it as the way to
//! keep shell variables in scripts. A `${` that does not close, or whose name
//! is not a variable name, is kept as written.

/// The result of substituting one string.
#[derive(Debug, PartialEq)]
pub struct Substituted {
    pub text: String,
    /// Variables that had no value and no default, in order of appearance.
    /// Flux replaces them by the empty string; meshc reports them.
    pub unresolved: Vec<String>,
    /// Whether anything was replaced (the value is no longer as written).
    pub changed: bool,
}

/// Whether `text` holds anything substitution would touch.
pub fn has_reference(text: &str) -> bool {
    text.contains("${")
}

/// Substitutes the references in `text`, looking values up with `lookup`.
pub fn substitute<'a>(text: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> Substituted {
    let mut out = Substituted { text: String::with_capacity(text.len()), unresolved: Vec::new(), changed: false };
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.text.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(escaped) = tail.strip_prefix("$${") {
            out.text.push_str("${");
            out.changed = true;
            rest = escaped;
            continue;
        }
        match tail.strip_prefix("${").and_then(reference) {
            Some((r, len)) => {
                out.text.push_str(&r.value(&lookup, &mut out.unresolved));
                out.changed = true;
                rest = &tail[len..];
            }
            None => {
                out.text.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.text.push_str(rest);
    out
}

/// One `${...}` reference.
struct Reference<'t> {
    name: &'t str,
    /// The default and whether it also replaces an empty value (`:=`, `:-`).
    default: Option<(&'t str, bool)>,
}

impl Reference<'_> {
    fn value<'a>(&self, lookup: &impl Fn(&str) -> Option<&'a str>, unresolved: &mut Vec<String>) -> String {
        match (lookup(self.name), self.default) {
            (Some(""), Some((d, true))) => d.to_owned(),
            (Some(v), _) => v.to_owned(),
            (None, Some((d, _))) => d.to_owned(),
            (None, None) => {
                if !unresolved.iter().any(|u| u == self.name) {
                    unresolved.push(self.name.to_owned());
                }
                String::new()
            }
        }
    }
}

/// Parses the reference after `${`; returns it and the length of `${...}`.
fn reference(body: &str) -> Option<(Reference<'_>, usize)> {
    let close = body.find('}')?;
    let inner = &body[..close];
    let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let name = &inner[..name_len];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let op = &inner[name_len..];
    let default = if op.is_empty() {
        None
    } else if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
        Some((d, true))
    } else if let Some(d) = op.strip_prefix('=').or_else(|| op.strip_prefix('-')) {
        Some((d, false))
    } else {
        return None;
    };
    Some((Reference { name, default }, close + 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vars: &[(&'static str, &'static str)]) -> Substituted {
        substitute(text, |n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| *v))
    }

    #[test]
    fn values_defaults_and_escapes() {
        let vars = [("A", "x"), ("EMPTY", "")];
        assert_eq!(run("${A}/${B:=d}/${B:-e}", &vars).text, "x/d/e");
        // `:=`/`:-` replace an empty value, `=`/`-` only an unset one.
        assert_eq!(run("[${EMPTY:=d}][${EMPTY=d}][${EMPTY-d}][${NOPE-d}]", &vars).text, "[d][][][d]");
        assert_eq!(run("$${A} $A ${1X} ${A", &vars).text, "${A} $A ${1X} ${A");
    }

    #[test]
    fn unset_without_default_is_empty_and_reported_once() {
        let s = run("${U}-${U}-${V:=10.0.0.0/8}", &[]);
        assert_eq!(s.text, "--10.0.0.0/8");
        assert_eq!(s.unresolved, ["U"]);
        assert!(s.changed);
        assert!(!run("no refs $HOME", &[]).changed);
    }
}
