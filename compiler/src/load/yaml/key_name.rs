//! Mapping key names, shared within a parse.
//!
//! Manifests repeat a few dozen key names (`metadata`, `name`, `namespace`,
//! `labels`, `kind`, ...) on nearly every line, and a check holds every
//! object's tree (keys and positions) to its end, so that findings can cite
//! any field. An owned `String` per key was one heap block per line of
//! input: about a tenth of `check`'s peak memory on a large repository.
//! One parse ([`super::parse_documents`]) gives every occurrence of a name
//! the same reference-counted string instead ([`Interner`]).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// A key's name: reads as a `str`; clones share the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(Arc<str>);

impl KeyName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for KeyName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Lets a `HashSet<KeyName>` be searched by `&str` (the hashes agree:
/// `Arc<str>` hashes as its `str`).
impl Borrow<str> for KeyName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for KeyName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for KeyName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for KeyName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl From<&str> for KeyName {
    fn from(name: &str) -> Self {
        KeyName(Arc::from(name))
    }
}

impl From<String> for KeyName {
    fn from(name: String) -> Self {
        KeyName(Arc::from(name))
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The names one parse has seen; each is allocated once.
#[derive(Default)]
pub(super) struct Interner(HashSet<KeyName>);

impl Interner {
    /// The shared name equal to `name`.
    pub(super) fn intern(&mut self, name: &str) -> KeyName {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let new = KeyName::from(name);
        self.0.insert(new.clone());
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_seen_twice_is_one_allocation() {
        let mut interner = Interner::default();
        let a = interner.intern("metadata");
        let b = interner.intern("metadata");
        let c = interner.intern("spec");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!((a.as_str(), c.as_str()), ("metadata", "spec"));
        // Compared with a `&str`, a `str` and a `String`, as callers do.
        let owned = String::from("metadata");
        assert!(a == "metadata" && a == *"metadata" && a == owned);
    }
}
