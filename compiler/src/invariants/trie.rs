//! Answers memoized by what was read to reach them.
//!
//! Evaluating a predicate on an edge reads some of the edge's values in
//! some order, and which value it reads next depends only on the values it
//! read so far (CEL is pure and evaluates in a fixed order). So the answers
//! form a decision tree: each branch node names a read, its children are
//! keyed by that read's value, and each leaf holds the answer. For a new
//! edge, walking the tree reads the edge's values natively; the predicate
//! is evaluated only when the walk reaches a value never seen at that node,
//! and its reads then extend the tree. `a || b` that is true by `a` never
//! lets the edge's `b` split it.

use super::tracked::Read;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hash for the small integer keys of the tree: the
/// default SipHash costs more than the rest of a step.
#[derive(Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        words.remainder().iter().for_each(|b| self.write_u64(u64::from(*b)));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
pub type FxSet<K> = HashSet<K, BuildHasherDefault<Fx>>;

enum Node<A> {
    Empty,
    Branch { read: Read, next: FxMap<u64, usize> },
    Leaf(A),
}

pub struct Trie<A> {
    nodes: Vec<Node<A>>,
    /// The reads of the last walk, in order.
    path: Vec<Read>,
}

/// Where a walk stopped for want of an answer.
pub struct Miss {
    node: usize,
    /// The value of the stopping node's read, if it is a branch.
    value: Option<u64>,
}

impl<A: Clone> Trie<A> {
    pub fn new() -> Self {
        Trie { nodes: vec![Node::Empty], path: Vec::new() }
    }

    /// The answer for the item whose values `value` gives, or where to insert one.
    pub fn walk(&mut self, mut value: impl FnMut(Read) -> u64) -> Result<A, Miss> {
        let mut node = 0;
        self.path.clear();
        loop {
            match &self.nodes[node] {
                Node::Leaf(a) => return Ok(a.clone()),
                Node::Empty => return Err(Miss { node, value: None }),
                Node::Branch { read, next } => {
                    let v = value(*read);
                    match next.get(&v) {
                        Some(&n) => {
                            self.path.push(*read);
                            node = n;
                        }
                        None => return Err(Miss { node, value: Some(v) }),
                    }
                }
            }
        }
    }

    fn push(&mut self, n: Node<A>) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// Records `answer`, reached by `reads` (distinct, in order), at `miss`.
    /// An evaluation whose reads disagree with the walk (it would not be
    /// deterministic) is not recorded.
    pub fn insert(&mut self, miss: Miss, reads: &[Read], answer: A, mut value: impl FnMut(Read) -> u64) {
        let Some(rest) = reads.strip_prefix(self.path.as_slice()) else { return };
        let stop = match &self.nodes[miss.node] {
            Node::Branch { read, .. } => Some(*read),
            Node::Empty => None,
            Node::Leaf(_) => return,
        };
        let (mut at, rest) = match (stop, miss.value) {
            (Some(read), Some(v)) => {
                if rest.first() != Some(&read) {
                    return;
                }
                let child = self.push(Node::Empty);
                if let Node::Branch { next, .. } = &mut self.nodes[miss.node] {
                    next.insert(v, child);
                }
                (child, &rest[1..])
            }
            (None, None) => (miss.node, rest),
            _ => return,
        };
        for &read in rest {
            let child = self.push(Node::Empty);
            let mut next = FxMap::default();
            next.insert(value(read), child);
            self.nodes[at] = Node::Branch { read, next };
            at = child;
        }
        self.nodes[at] = Node::Leaf(answer);
    }
}
