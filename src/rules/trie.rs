//! A compact radix trie over byte strings, walked along a key to find every
//! stored string that is a prefix of it (or, built on reversed strings, a
//! suffix). Lookup cost is bounded by the key's length, not by how many
//! strings are stored.
//!
//! Tries live in a shared [`Arena`] so that a whole rule index is a handful
//! of flat arrays: fewer cache lines per lookup, and each one prefetchable.

/// Node and label storage shared by many tries. A node's values are a range
/// of positions in an array the caller keeps: [`Arena::add_trie`] returns
/// the order in which the caller must lay its values out.
#[derive(Debug, Default, Clone)]
pub struct Arena {
    /// The bytes of every edge label (and whatever else the owner keeps
    /// there), concatenated.
    pub labels: Vec<u8>,
    nodes: Vec<Node>,
}

/// 16 bytes: four to a cache line.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    label_start: u32,
    first_child: u32,
    values_start: u32,
    label_len: u8,
    values_len: u8,
    child_count: u16,
}

/// Longest edge label a node holds; longer runs are split into a chain.
const MAX_LABEL: usize = u8::MAX as usize;

/// A trie in an arena: its root node, how many nodes it has, and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrieRef {
    pub root: u32,
    pub nodes: u32,
    pub reversed: bool,
}

/// A built trie: where it is, and the order of its values. The value of
/// `order[i]` must be stored at position `values_base + i` of the caller's
/// array.
#[derive(Debug)]
pub struct Built {
    pub trie: TrieRef,
    pub order: Vec<u32>,
}

impl Arena {
    /// Adds a trie matching prefixes of keys (`reversed = false`) or
    /// suffixes (`reversed = true`) of (string, value) entries, whose values
    /// the caller will store from `values_base` on in [`Built::order`];
    /// `None` when there are no entries.
    pub fn add_trie(
        &mut self,
        mut entries: Vec<(&[u8], u32)>,
        reversed: bool,
        values_base: u32,
    ) -> Option<Built> {
        if entries.is_empty() {
            return None;
        }
        let owned: Vec<(Vec<u8>, u32)>;
        let items: Vec<(&[u8], u32)> = if reversed {
            let mut o: Vec<(Vec<u8>, u32)> = entries
                .iter()
                .map(|(s, v)| (s.iter().rev().copied().collect(), *v))
                .collect();
            o.sort_unstable();
            owned = o;
            owned.iter().map(|(s, v)| (s.as_slice(), *v)).collect()
        } else {
            entries.sort_unstable();
            entries
        };
        let root = self.nodes.len() as u32;
        self.nodes.push(Node::default());
        let mut order = Vec::with_capacity(items.len());
        let node = self.build_node(&items, 0, &[], values_base, &mut order);
        self.nodes[root as usize] = node;
        Some(Built {
            trie: TrieRef {
                root,
                nodes: self.nodes.len() as u32 - root,
                reversed,
            },
            order,
        })
    }

    /// `items` are sorted and share their first `depth` bytes.
    fn build_node(
        &mut self,
        items: &[(&[u8], u32)],
        depth: usize,
        label: &[u8],
        values_base: u32,
        order: &mut Vec<u32>,
    ) -> Node {
        if label.len() > MAX_LABEL {
            // Split: this node takes the first MAX_LABEL bytes and has the
            // rest as its only child.
            let mut node = Node {
                label_start: self.labels.len() as u32,
                label_len: MAX_LABEL as u8,
                values_start: values_base + order.len() as u32,
                ..Node::default()
            };
            self.labels.extend_from_slice(&label[..MAX_LABEL]);
            node.first_child = self.nodes.len() as u32;
            node.child_count = 1;
            self.nodes.push(Node::default());
            let child = self.build_node(items, depth, &label[MAX_LABEL..], values_base, order);
            self.nodes[node.first_child as usize] = child;
            return node;
        }
        let mut node = Node {
            label_start: self.labels.len() as u32,
            label_len: label.len() as u8,
            ..Node::default()
        };
        self.labels.extend_from_slice(label);
        let ends_here = items.iter().take_while(|(s, _)| s.len() == depth).count();
        // A node holds at most 255 values; more identical strings than that
        // go to a chain of empty-label children.
        let here = ends_here.min(u8::MAX as usize);
        node.values_start = values_base + order.len() as u32;
        node.values_len = here as u8;
        order.extend(items[..here].iter().map(|(_, v)| *v));
        if here < ends_here {
            node.first_child = self.nodes.len() as u32;
            node.child_count = 1;
            self.nodes.push(Node::default());
            let child = self.build_node(&items[here..], depth, &[], values_base, order);
            self.nodes[node.first_child as usize] = child;
            return node;
        }
        let rest = &items[ends_here..];
        // Group the rest by their next byte; each group is one child.
        let mut groups = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let b = rest[i].0[depth];
            let n = rest[i..].iter().take_while(|(s, _)| s[depth] == b).count();
            groups.push(&rest[i..i + n]);
            i += n;
        }
        // At most 256 groups: one per next byte.
        node.first_child = self.nodes.len() as u32;
        node.child_count = groups.len() as u16;
        self.nodes
            .extend(std::iter::repeat_n(Node::default(), groups.len()));
        for (g, group) in groups.into_iter().enumerate() {
            // The child's label runs to the longest prefix its items share
            // (sorted, so the first and last bound it).
            let first = group[0].0;
            let last = group[group.len() - 1].0;
            let mut end = depth + 1;
            while end < first.len() && end < last.len() && first[end] == last[end] {
                end += 1;
            }
            let child = self.build_node(group, end, &first[depth..end], values_base, order);
            self.nodes[node.first_child as usize + g] = child;
        }
        node
    }

    pub fn shrink_to_fit(&mut self) {
        self.labels.shrink_to_fit();
        self.nodes.shrink_to_fit();
    }

    /// Asks the CPU to start loading a trie's first nodes and labels (a
    /// small trie wholly).
    #[inline]
    pub fn prefetch(&self, t: TrieRef) {
        let nodes = &self.nodes[t.root as usize..(t.root + t.nodes) as usize];
        for four in nodes.chunks(4).take(4) {
            super::prefetch::line(&four[0]);
        }
        if let Some(first) = nodes.get(1) {
            if let Some(b) = self.labels.get(first.label_start as usize) {
                super::prefetch::line(b);
            }
        }
    }

    /// Calls `f(position, matched_len)` for every stored string that is a
    /// prefix (or suffix, if reversed) of `key`, shortest first; `position`
    /// is where the caller stored that string's value.
    #[inline]
    pub fn for_each_match(&self, t: TrieRef, key: &[u8], mut f: impl FnMut(u32, usize)) {
        let at = |i: usize| {
            if t.reversed {
                key[key.len() - 1 - i]
            } else {
                key[i]
            }
        };
        let mut node = &self.nodes[t.root as usize];
        let mut pos = 0;
        loop {
            for v in node.values_start..node.values_start + node.values_len as u32 {
                f(v, pos);
            }
            if node.child_count == 0 {
                return;
            }
            let children = &self.nodes
                [node.first_child as usize..node.first_child as usize + node.child_count as usize];
            // A chain link (more values than a node holds): consumes nothing.
            if children.len() == 1 && children[0].label_len == 0 {
                node = &children[0];
                continue;
            }
            if pos == key.len() {
                return;
            }
            let b = at(pos);
            let Ok(i) = children.binary_search_by(|c| self.labels[c.label_start as usize].cmp(&b))
            else {
                return;
            };
            let child = &children[i];
            let label = &self.labels
                [child.label_start as usize..child.label_start as usize + child.label_len as usize];
            if key.len() - pos < label.len() {
                return;
            }
            if label.iter().enumerate().any(|(j, &c)| at(pos + j) != c) {
                return;
            }
            pos += label.len();
            node = child;
        }
    }

    /// Heap bytes, for the index size report.
    pub fn heap_bytes(&self) -> usize {
        self.labels.capacity() + self.nodes.capacity() * std::mem::size_of::<Node>()
    }
}

/// A trie with an arena of its own (for one-off uses such as overlap checks).
#[derive(Debug, Default, Clone)]
pub struct Trie {
    arena: Arena,
    root: Option<TrieRef>,
    /// position → value
    order: Vec<u32>,
}

impl Trie {
    pub fn build(entries: Vec<(&[u8], u32)>, reversed: bool) -> Trie {
        let mut arena = Arena::default();
        match arena.add_trie(entries, reversed, 0) {
            Some(b) => Trie {
                arena,
                root: Some(b.trie),
                order: b.order,
            },
            None => Trie::default(),
        }
    }

    /// Calls `f(value, matched_len)` for every stored string that is a
    /// prefix (or suffix) of `key`, shortest first.
    #[inline]
    pub fn for_each_match(&self, key: &[u8], mut f: impl FnMut(u32, usize)) {
        if let Some(t) = self.root {
            self.arena
                .for_each_match(t, key, |p, n| f(self.order[p as usize], n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(t: &Trie, key: &str) -> Vec<(u32, usize)> {
        let mut v = Vec::new();
        t.for_each_match(key.as_bytes(), |x, n| v.push((x, n)));
        v
    }

    #[test]
    fn prefixes_of_a_key_shortest_first() {
        let words = ["a/", "a/b/", "a/b/c", "b", "", "a/bc", "a/"];
        let t = Trie::build(
            words
                .iter()
                .enumerate()
                .map(|(i, w)| (w.as_bytes(), i as u32))
                .collect(),
            false,
        );
        assert_eq!(
            matches(&t, "a/b/cd"),
            vec![(4, 0), (0, 2), (6, 2), (1, 4), (2, 5)]
        );
        assert_eq!(matches(&t, "a"), vec![(4, 0)]);
        assert_eq!(matches(&t, "bz"), vec![(4, 0), (3, 1)]);
        assert_eq!(matches(&t, "a/bc"), vec![(4, 0), (0, 2), (6, 2), (5, 4)]);
    }

    #[test]
    fn suffixes_when_reversed() {
        let words = [".jpg", "g", "cat.jpg", ".png"];
        let t = Trie::build(
            words
                .iter()
                .enumerate()
                .map(|(i, w)| (w.as_bytes(), i as u32))
                .collect(),
            true,
        );
        assert_eq!(matches(&t, "x/cat.jpg"), vec![(1, 1), (0, 4), (2, 7)]);
        assert_eq!(matches(&t, "a.png"), vec![(1, 1), (3, 4)]);
        assert_eq!(matches(&t, ""), vec![]);
        assert_eq!(matches(&Trie::build(vec![], true), "abc"), vec![]);
    }

    #[test]
    fn many_tries_share_one_arena() {
        let mut a = Arena::default();
        let t1 = a.add_trie(vec![(b"ab", 1), (b"a", 2)], false, 0).unwrap();
        assert_eq!(t1.order, vec![2, 1]);
        let t2 = a.add_trie(vec![(b"xy", 3), (b"y", 4)], true, 2).unwrap();
        assert_eq!(t2.order, vec![4, 3]);
        let mut got = Vec::new();
        a.for_each_match(t1.trie, b"abc", |v, n| got.push((v, n)));
        a.for_each_match(t2.trie, b"zxy", |v, n| got.push((v, n)));
        assert_eq!(got, vec![(0, 1), (1, 2), (2, 1), (3, 2)]);
    }

    #[test]
    fn long_labels_and_many_equal_strings() {
        let long = "x".repeat(700);
        let key = format!("{long}yz");
        let mut entries: Vec<(&[u8], u32)> = vec![(long.as_bytes(), 1), (key.as_bytes(), 2)];
        for i in 0..600 {
            entries.push((b"x", 10 + i));
        }
        let t = Trie::build(entries, false);
        let got = matches(&t, &key);
        assert_eq!(got.len(), 602);
        assert_eq!(got[0].1, 1);
        assert_eq!(got[600], (1, 700));
        assert_eq!(got[601], (2, 702));
        assert_eq!(matches(&t, &long[..699]).len(), 600);
    }
}
