//! The shape of the code, checked on every test run (issue: one room, one
//! job): no import circle runs through more than two files, and no module
//! of the library imports one above it on the record's road (the road's
//! order is [`ROAD`]). The graph is read from the source: every `crate::`,
//! `super::` and `self::` path outside comments and unit tests, use trees
//! expanded, resolved to the longest module path that is a file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, in the order a record meets them (the
/// engine's steps, then what drives them, then the daemon, then the other
/// commands). A module may import those before it, and its own layer.
const ROAD: &[&[&str]] = &[
    &["oplog"],
    &["event"],
    &["rules"],
    &["encode"],
    &["engine"],
    &["config", "synth"],
    &["metric_names"],
    &["pipeline"],
    &[
        "backfill",
        "backlog_admin",
        "dead_letter_admin",
        "dry_run",
        "expectations",
        "loadgen",
        "plan",
        "tap_client",
    ],
];

type Module = Vec<String>;

/// Every `.rs` file under `root` as its module path (`a/b/mod.rs` and
/// `a/b.rs` are `a::b`; `lib.rs` is the root), skipping `skip`.
fn modules(root: &Path, skip: &[&str]) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            if p.is_dir() {
                dirs.push(p);
            } else if rel.ends_with(".rs") {
                let mut parts: Module = rel
                    .trim_end_matches(".rs")
                    .split('/')
                    .map(str::to_owned)
                    .collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                    parts.pop();
                }
                out.insert(parts, p);
            }
        }
    }
    out
}

/// The code that counts: unit tests (a `#[cfg(test)] mod tests` at the end,
/// by this project's habit) and line comments left out.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(b: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&b[start..i]).into_owned(), i)
}

/// The paths a use tree or path starting at `i` names, after `prefix`.
fn paths(b: &[u8], mut i: usize, prefix: Module, out: &mut Vec<Module>) -> usize {
    let mut path = prefix;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                i = paths(b, i, path.clone(), out);
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return i + 1;
                }
            }
        }
        let (name, next) = ident(b, i);
        if name.is_empty() {
            out.push(path);
            return i;
        }
        path.push(name);
        i = next;
        if b.get(i..i + 2) == Some(b"::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// The modules `m` (a file of `mods`) refers to.
fn imports(mods: &BTreeMap<Module, PathBuf>, m: &Module, text: &str) -> BTreeSet<Module> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        let (word, next) = ident(b, i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        if boundary
            && matches!(word.as_str(), "crate" | "super" | "self")
            && b.get(next..next + 2) == Some(b"::")
        {
            let start: Module = match word.as_str() {
                "crate" => Vec::new(),
                "super" => m[..m.len().saturating_sub(1)].to_vec(),
                _ => m.clone(),
            };
            let mut got = Vec::new();
            i = paths(b, next + 2, start, &mut got);
            for mut p in got {
                // `super::super::x`.
                while let Some(k) = p.iter().position(|s| s == "super") {
                    p.remove(k);
                    if k > 0 {
                        p.remove(k - 1);
                    }
                }
                found.push(p);
            }
        } else {
            i = next;
        }
    }
    found
        .into_iter()
        .filter_map(|p| {
            (1..=p.len())
                .rev()
                .map(|n| p[..n].to_vec())
                .find(|q| mods.contains_key(q))
        })
        .filter(|q| q != m)
        .collect()
}

fn graph(root: &str, skip: &[&str]) -> BTreeMap<Module, BTreeSet<Module>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let mods = modules(&root, skip);
    mods.iter()
        .map(|(m, p)| {
            let text = code(&std::fs::read_to_string(p).unwrap());
            (m.clone(), imports(&mods, m, &text))
        })
        .collect()
}

/// Strongly connected components (Tarjan).
fn circles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'g> {
        g: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, (usize, usize)>,
        stack: Vec<&'g Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g Module) {
        t.index.insert(v, (t.next, t.next));
        t.next += 1;
        t.stack.push(v);
        for w in t.g.get(v).into_iter().flatten() {
            if !t.g.contains_key(w) {
                continue;
            }
            match t.index.get(w) {
                None => {
                    visit(t, w);
                    let low = t.index[w].1.min(t.index[v].1);
                    t.index.get_mut(v).unwrap().1 = low;
                }
                Some(&(wi, _)) if t.stack.contains(&w) => {
                    let low = wi.min(t.index[v].1);
                    t.index.get_mut(v).unwrap().1 = low;
                }
                Some(_) => {}
            }
        }
        if t.index[v].0 == t.index[v].1 {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            t.out.push(comp);
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn named(ms: &[Module]) -> Vec<String> {
    ms.iter().map(|m| m.join("::")).collect()
}

#[test]
fn no_import_circle_runs_through_more_than_two_files() {
    for (root, skip) in [("src", &["main.rs", "cli"][..]), ("sinks/src", &[][..])] {
        let g = graph(root, skip);
        assert!(g.len() > 20, "{root}: only {} modules found", g.len());
        let long: Vec<Vec<String>> = circles(&g)
            .into_iter()
            .filter(|c| c.len() > 2)
            .map(|c| named(&c))
            .collect();
        assert!(
            long.is_empty(),
            "{root}: import circles through more than two files: {long:?}"
        );
    }
}

#[test]
fn no_library_module_imports_one_above_it_on_the_road() {
    let layer = |top: &str| ROAD.iter().position(|l| l.contains(&top));
    let g = graph("src", &["main.rs", "cli"]);
    let mut upward = Vec::new();
    for (m, to) in &g {
        let Some(from_top) = m.first() else { continue };
        let from =
            layer(from_top).unwrap_or_else(|| panic!("module {from_top} has no place in ROAD"));
        for t in to {
            let Some(to_top) = t.first() else { continue };
            let to_layer =
                layer(to_top).unwrap_or_else(|| panic!("module {to_top} has no place in ROAD"));
            if to_layer > from {
                upward.push(format!("{} -> {}", m.join("::"), t.join("::")));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run back up the road: {upward:#?}"
    );
}

/// The checks see what they are meant to: a known import and a circle
/// made on purpose.
#[test]
fn the_checks_find_imports_and_circles() {
    let g = graph("src", &["main.rs", "cli"]);
    let engine = vec!["engine".to_owned()];
    assert!(
        g[&engine].contains(&vec!["rules".to_owned()]),
        "engine's imports: {:?}",
        g[&engine]
    );
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Module>();
    let made: BTreeMap<Module, BTreeSet<Module>> = [
        (m("a"), [m("b")].into()),
        (m("b"), [m("c")].into()),
        (m("c"), [m("a")].into()),
        (m("d"), [m("a")].into()),
    ]
    .into();
    let found: Vec<usize> = circles(&made).iter().map(Vec::len).collect();
    assert!(found.contains(&3) && found.iter().filter(|n| **n == 1).count() == 1);
}

/// Each `.rs` file under `root`, its path and its text without its unit
/// tests.
fn sources(root: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    modules(&root, &[])
        .into_values()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            (p, code)
        })
        .filter(|(p, _)| !p.ends_with("tests.rs"))
        .collect()
}

/// No file over 600 lines and no function over 80, unit tests aside: a
/// room that grows past that is doing two jobs.
#[test]
fn no_file_over_600_lines_and_no_function_over_80() {
    let mut over = Vec::new();
    for root in ["src", "sinks/src", "mns-dev/src"] {
        for (path, code) in sources(root) {
            let lines: Vec<&str> = code.lines().collect();
            if lines.len() > 600 {
                over.push(format!("{}: {} lines", path.display(), lines.len()));
            }
            for (i, l) in lines.iter().enumerate() {
                let t = l.trim_start();
                let indent = l.len() - t.len();
                let t = t
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub(super) ")
                    .trim_start_matches("pub ")
                    .trim_start_matches("async ")
                    .trim_start_matches("unsafe ");
                if !t.starts_with("fn ") {
                    continue;
                }
                let close = format!("{}}}", " ".repeat(indent));
                if let Some(n) = lines[i + 1..]
                    .iter()
                    .position(|x| x.starts_with(&close) && !x[indent..].starts_with("} "))
                {
                    if n + 2 > 80 {
                        over.push(format!("{}:{}: {} lines", path.display(), i + 1, n + 2));
                    }
                }
            }
        }
    }
    assert!(over.is_empty(), "{over:#?}");
}
