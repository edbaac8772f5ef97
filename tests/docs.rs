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

/// A metric the docs name: `name`, the labels written with it (`{sink}`,
/// `{result="refused"}`) and where.
struct Mention {
    name: String,
    labels: Vec<(String, Option<String>)>,
    at: String,
}

/// Every `ossnotify_…` metric mentioned in README.md and docs/ (a Rust path,
/// `ossnotify_sinks::…`, is not one).
fn mentions() -> Vec<Mention> {
    let mut files = vec![repo("README.md")];
    for e in std::fs::read_dir(repo("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            files.push(e.path());
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for part in line.split("ossnotify_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                let rest = &part[name.len()..];
                if name.is_empty() || rest.starts_with("::") || name == "sinks" {
                    continue;
                }
                let labels = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .map(|(inside, _)| {
                        inside
                            .split(',')
                            .map(|l| match l.split_once('=') {
                                Some((k, v)) => {
                                    (k.trim().to_owned(), Some(v.trim_matches('"').to_owned()))
                                }
                                None => (l.trim().to_owned(), None),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Mention {
                    name: format!("ossnotify_{name}"),
                    labels,
                    at: format!("{}:{}", f.display(), n + 1),
                });
            }
        }
    }
    out
}

/// What a daemon exports after a run that exercises much: a stdin source,
/// a webhook on a closed port (retries, its breaker open, its backlog), a
/// null sink, an invalid record, and a reload refused.
fn a_daemons_metrics() -> String {
    use std::io::Write;
    let d = support::Dir::new();
    let port = support::free_port();
    let closed = support::free_port();
    let body = |sink: &str| {
        format!(
            "[source]\ntype = \"stdin\"\n[dead_letter]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[sinks.hook]\ntype = \"http\"\nurl = \"http://127.0.0.1:{closed}/\"\n[sinks.hook.retry]\nmax_attempts = 2\ninitial_backoff_ms = 1\nmax_backoff_ms = 2\n[sinks.hook.breaker]\nfailures = 2\n[sinks.n]\ntype = \"null\"\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [{sink}]\n",
            d.path("state").display()
        )
    };
    let cfg = d.write("m.toml", &body("\"hook\", \"n\""));
    let mut child = support::run_on_stdin(&cfg);
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..20 {
        writeln!(stdin, r#"{{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"b","object":"k{i}","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r{i}","http_status":200}}"#).unwrap();
    }
    writeln!(stdin, "not json").unwrap();
    stdin.flush().unwrap();
    // A reload that names a sink that does not exist: refused.
    std::thread::sleep(std::time::Duration::from_secs(1));
    std::fs::write(&cfg, body("\"nobody\"")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut m = String::new();
    while std::time::Instant::now() < deadline {
        m = support::http_get(port, "/metrics");
        if m.contains("ossnotify_reloads_total{result=\"refused\"} 1")
            && m.contains("ossnotify_sink_breaker_state{sink=\"hook\"} 1")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(stdin);
    let _ = child.wait();
    m
}

#[test]
fn every_metric_the_docs_name_is_exported_with_its_labels() {
    let exported = support::exported_metrics();
    let mentioned = mentions();
    assert!(mentioned.len() > 20, "{} mentions", mentioned.len());
    let unknown: Vec<String> = mentioned
        .iter()
        .filter(|m| !exported.contains(&m.name))
        .map(|m| format!("{}: {}", m.at, m.name))
        .collect();
    assert!(
        unknown.is_empty(),
        "the docs name metrics nothing exports:\n{}",
        unknown.join("\n")
    );
    // Labels, on a daemon that exports the metric (some need a Kafka
    // source or an outage of their own: their names are checked above).
    let m = a_daemons_metrics();
    let samples: Vec<&str> = m.lines().filter(|l| l.starts_with("ossnotify_")).collect();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for mention in mentioned.iter().filter(|x| !x.labels.is_empty()) {
        let of: Vec<&&str> = samples
            .iter()
            .filter(|s| {
                s.strip_prefix(&mention.name)
                    .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
            })
            .collect();
        // Histograms export `_bucket`/`_sum`/`_count` series instead.
        let of: Vec<&&str> = if of.is_empty() {
            samples
                .iter()
                .filter(|s| s.starts_with(&format!("{}_", mention.name)))
                .collect()
        } else {
            of
        };
        if of.is_empty() {
            continue;
        }
        checked += 1;
        for (label, value) in &mention.labels {
            let want = match value {
                Some(v) => format!("{label}=\"{v}\""),
                None => format!("{label}=\""),
            };
            if !of.iter().any(|s| s.contains(&want)) {
                wrong.push(format!(
                    "{}: {}{{{want}}} is not exported",
                    mention.at, mention.name
                ));
            }
        }
    }
    assert!(
        checked >= 8,
        "only {checked} labelled mentions checked:\n{m}"
    );
    assert!(
        wrong.is_empty(),
        "{}\nexported:\n{}",
        wrong.join("\n"),
        samples.join("\n")
    );
}
