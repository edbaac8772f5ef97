//! A compact radix trie over byte strings, walked along a key to find every
//! stored string that is a prefix of it (or, built on reversed strings, a
//! suffix). Lookup cost is bounded by the key's length, not by how many
//! strings are stored.

/// An immutable radix trie whose entries carry `u32` values.
#[derive(Debug, Default, Clone)]
pub struct Trie {
    /// The bytes of every edge label, concatenated.
    labels: Vec<u8>,
    nodes: Vec<Node>,
    values: Vec<u32>,
    reversed: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Node {
    label_start: u32,
    label_len: u32,
    first_child: u32,
    child_count: u32,
    values_start: u32,
    values_len: u32,
}

impl Trie {
    /// Builds a trie matching prefixes of keys (`reversed = false`) or
    /// suffixes (`reversed = true`) from (string, value) entries.
    pub fn build(mut entries: Vec<(&[u8], u32)>, reversed: bool) -> Trie {
        let mut owned: Vec<(Vec<u8>, u32)>;
        let items: Vec<(&[u8], u32)> = if reversed {
            owned = entries
                .iter()
                .map(|(s, v)| (s.iter().rev().copied().collect(), *v))
                .collect();
            owned.sort_unstable();
            owned.iter().map(|(s, v)| (s.as_slice(), *v)).collect()
        } else {
            entries.sort_unstable();
            entries
        };
        let mut t = Trie {
            reversed,
            ..Trie::default()
        };
        if items.is_empty() {
            return t;
        }
        t.nodes.push(Node::default());
        let root = t.build_node(&items, 0, &[]);
        t.nodes[0] = root;
        t.nodes.shrink_to_fit();
        t.labels.shrink_to_fit();
        t.values.shrink_to_fit();
        t
    }

    /// `items` are sorted and share their first `depth` bytes.
    fn build_node(&mut self, items: &[(&[u8], u32)], depth: usize, label: &[u8]) -> Node {
        let mut node = Node {
            label_start: self.labels.len() as u32,
            label_len: label.len() as u32,
            ..Node::default()
        };
        self.labels.extend_from_slice(label);
        let ends_here = items.iter().take_while(|(s, _)| s.len() == depth).count();
        node.values_start = self.values.len() as u32;
        node.values_len = ends_here as u32;
        self.values
            .extend(items[..ends_here].iter().map(|(_, v)| *v));
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
        node.first_child = self.nodes.len() as u32;
        node.child_count = groups.len() as u32;
        self.nodes
            .extend(std::iter::repeat_n(Node::default(), groups.len()));
        for (g, group) in groups.into_iter().enumerate() {
            // The child's label runs to the longest prefix its items share
            // (sorted, so first and last bound it).
            let first = group[0].0;
            let last = group[group.len() - 1].0;
            let mut end = depth + 1;
            while end < first.len() && end < last.len() && first[end] == last[end] {
                end += 1;
            }
            let child = self.build_node(group, end, &first[depth..end]);
            self.nodes[node.first_child as usize + g] = child;
        }
        node
    }

    /// Calls `f(value, matched_len)` for every stored string that is a prefix
    /// (or suffix, if reversed) of `key`, shortest first.
    #[inline]
    pub fn for_each_match(&self, key: &[u8], mut f: impl FnMut(u32, usize)) {
        if self.nodes.is_empty() {
            return;
        }
        let at = |i: usize| {
            if self.reversed {
                key[key.len() - 1 - i]
            } else {
                key[i]
            }
        };
        let mut node = &self.nodes[0];
        let mut pos = 0;
        loop {
            for v in &self.values
                [node.values_start as usize..(node.values_start + node.values_len) as usize]
            {
                f(*v, pos);
            }
            if pos == key.len() || node.child_count == 0 {
                return;
            }
            let b = at(pos);
            let children = &self.nodes
                [node.first_child as usize..(node.first_child + node.child_count) as usize];
            let Ok(i) = children.binary_search_by(|c| self.labels[c.label_start as usize].cmp(&b))
            else {
                return;
            };
            let child = &children[i];
            let label = &self.labels
                [child.label_start as usize..(child.label_start + child.label_len) as usize];
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

    /// Approximate heap bytes, for the index size report.
    pub fn heap_bytes(&self) -> usize {
        self.labels.capacity()
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.values.capacity() * 4
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
}
