//! The examples in `docs/` are true: every `<!-- check: ossnotify ARGS -->`
//! comment is followed by a fenced block fed to `ossnotify ARGS` on
//! standard input and a fenced block of the JSON values it must print (one
//! per output line, pretty-printed or not). `; ignore: a.b` names fields
//! whose value changes from run to run (only their presence is checked).

mod support;

use support::{repo, run, text};

struct Check {
    file: String,
    line: usize,
    args: Vec<String>,
    ignore: Vec<String>,
    input: String,
    output: String,
}

/// The fenced blocks after line `from`: (first line of the body, body).
fn fenced_blocks(lines: &[&str], from: usize, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = from;
    while out.len() < n && i < lines.len() {
        if lines[i].starts_with("```") {
            let start = i + 1;
            let end = (start..lines.len())
                .find(|&j| lines[j].starts_with("```"))
                .expect("an unclosed fenced block");
            out.push(lines[start..end].join("\n"));
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

fn checks() -> Vec<Check> {
    let mut all = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for path in files {
        let doc = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = doc.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(rest) = l.trim().strip_prefix("<!-- check: ossnotify ") else {
                continue;
            };
            let rest = rest.trim_end_matches("-->").trim();
            let (cmd, ignore) = match rest.split_once("; ignore:") {
                Some((c, ig)) => (c, ig.split(',').map(|s| s.trim().to_owned()).collect()),
                None => (rest, Vec::new()),
            };
            let blocks = fenced_blocks(&lines, i + 1, 2);
            assert_eq!(
                blocks.len(),
                2,
                "{}:{}: needs an input and an output block",
                path.display(),
                i + 1
            );
            all.push(Check {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                line: i + 1,
                args: cmd.split_whitespace().map(str::to_owned).collect(),
                ignore,
                input: blocks[0].clone(),
                output: blocks[1].clone(),
            });
        }
    }
    all
}

/// Replaces the value at dotted `path` with `"<ignored>"`, panicking when
/// it is missing (an ignored field must still be there).
fn blank(v: &mut serde_json::Value, path: &str, at: &str) {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur
            .get_mut(part)
            .unwrap_or_else(|| panic!("{at}: the output has no {path}"));
    }
    *cur = serde_json::Value::String("<ignored>".into());
}

#[test]
fn every_example_in_docs_prints_what_it_shows() {
    let checks = checks();
    assert!(checks.len() >= 2, "no examples found in docs/");
    for c in checks {
        let at = format!("docs/{}:{}", c.file, c.line);
        // Paths in the examples are relative to the repository.
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| {
                if a.starts_with("configs/") {
                    repo(a).to_string_lossy().into_owned()
                } else {
                    a.clone()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, format!("{}\n", c.input).as_bytes());
        assert!(
            out.status.success(),
            "{at}: exit {:?}: {}",
            out.status,
            text(&out.stderr)
        );
        let mut got: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{at}: {e}: {l}")))
            .collect();
        let mut want: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&c.output)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{at}: the doc's output is not JSON: {e}"));
        for v in got.iter_mut().chain(want.iter_mut()) {
            for path in &c.ignore {
                blank(v, path, &at);
            }
        }
        assert_eq!(got, want, "{at}: the output differs from the doc");
    }
}
