//! The files in `deploy/`: the Grafana dashboard queries only metrics the
//! code exports (a renamed or removed metric fails here), the systemd unit
//! passes `systemd-analyze verify` without a warning, and the Kubernetes
//! example probes the endpoints the daemon serves.

mod support;

use std::collections::BTreeSet;

/// Every `"ossnotify_…"` string literal under `dir`: the metric names the
/// code exports (each is one constant, used where it is recorded).
fn exported(dir: &std::path::Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            exported(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for part in text.split("\"ossnotify_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if part[name.len()..].starts_with('"') {
                    out.insert(format!("ossnotify_{name}"));
                }
            }
        }
    }
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let mut names = BTreeSet::new();
    exported(&support::repo("src"), &mut names);
    exported(&support::repo("sinks/src"), &mut names);
    assert!(names.contains("ossnotify_records_total"), "{names:?}");
    let text =
        std::fs::read_to_string(support::repo("deploy/grafana/ossnotify-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queried = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for part in expr.split("ossnotify_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                queried.insert(format!("ossnotify_{name}"));
            }
        }
    }
    // A histogram's series are its name plus _bucket, _sum, _count.
    let base = |q: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| q.strip_suffix(s).filter(|b| names.contains(*b)))
            .unwrap_or(q)
            .to_owned()
    };
    let missing: Vec<&String> = queried
        .iter()
        .filter(|q| !names.contains(&base(q)))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics nothing exports: {missing:?}"
    );
    // What the issue asks the dashboard to show.
    for want in [
        "ossnotify_records_total",
        "ossnotify_messages_total",
        "ossnotify_consumer_lag",
        "ossnotify_queue_depth",
        "ossnotify_reloads_total",
        "ossnotify_event_age_seconds_bucket",
        "ossnotify_oldest_pending_seconds",
    ] {
        assert!(queried.contains(want), "the dashboard does not show {want}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed here");
        return;
    }
    // The unit names the installed binary; verify checks it exists.
    let d = support::Dir::new();
    let unit = std::fs::read_to_string(support::repo("deploy/systemd/ossnotify.service")).unwrap();
    let bin = support::bin().get_program().to_str().unwrap().to_owned();
    let path = d.write(
        "ossnotify.service",
        &unit.replace("/usr/local/bin/ossnotify", &bin),
    );
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_kubernetes_example_probes_health_and_readiness() {
    let text = std::fs::read_to_string(support::repo("deploy/kubernetes/ossnotify.yaml")).unwrap();
    for want in [
        "livenessProbe:\n            httpGet: {path: /health, port: metrics}",
        "readinessProbe:\n            httpGet: {path: /ready, port: metrics}",
        "prometheus.io/path: /metrics",
        "secretRef: {name: ossnotify-mns}",
        "configMap: {name: ossnotify}",
    ] {
        assert!(text.contains(want), "missing {want:?}");
    }
    // Its config is a valid config (structure; credentials come from the Secret).
    let start = text.find("config.toml: |\n").unwrap() + "config.toml: |\n".len();
    let end = text[start..].find("\n---").unwrap() + start;
    let config: String = text[start..end]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let d = support::Dir::new();
    let path = d.write("k8s.toml", &config);
    let out = support::run(
        &["validate", "--no-environment", "-c", path.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stdout));
}
