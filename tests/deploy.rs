//! The files in `deploy/`: the Grafana dashboard queries only metrics the
//! code exports (a renamed or removed metric fails here), the systemd unit
//! passes `systemd-analyze verify` without a warning, and the Kubernetes
//! layouts (kustomize) and the Helm chart (`helm lint`, `helm template`)
//! probe the endpoints the daemon serves, keep no state with the Kafka
//! stores, and carry valid configs.

mod support;

use std::collections::BTreeSet;

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let names = support::exported_metrics();
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

/// The systemd unit's own install lines, as a layout: the config directory
/// and file modes it gives, with the group of the service's user.
fn systemd_layout(unit: &str) -> (u32, u32) {
    let mode = |prefix: &str| {
        let line = unit
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the unit"));
        assert!(line.contains("-g ossnotify"), "{line}");
        let m = line.split("-m ").nth(1).unwrap().split(' ').next().unwrap();
        u32::from_str_radix(m, 8).unwrap()
    };
    (
        mode("#   install -d -m"),
        mode("#   install -m 0640 -o root -g ossnotify config.toml"),
    )
}

/// The unit's service user can read its config, and only it: the layout
/// its install lines make, built under a temporary root with the group of
/// an unprivileged user (`nobody:nogroup`), read as that user through
/// `ossnotify validate`. The secrets' env file is root's alone (systemd
/// reads it before dropping to the user). Needs root and setpriv, as CI
/// has; skipped elsewhere.
#[test]
fn the_systemd_layout_lets_its_user_read_the_config() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let unit = std::fs::read_to_string(support::repo("deploy/systemd/ossnotify.service")).unwrap();
    assert!(
        unit.contains("\nUser=ossnotify\nGroup=ossnotify\n"),
        "{unit}"
    );
    assert!(!unit.contains("DynamicUser=yes"));
    let (dir_mode, file_mode) = systemd_layout(&unit);
    let root_here = std::process::Command::new("id").arg("-u").output().unwrap();
    if support::text(&root_here.stdout).trim() != "0"
        || !std::path::Path::new("/usr/bin/setpriv").exists()
    {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let d = support::Dir::new();
    let top = d.dir.path();
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
    let etc = top.join("etc-ossnotify");
    std::fs::create_dir(&etc).unwrap();
    let config = etc.join("config.toml");
    std::fs::write(&config, "[sinks.n]\ntype = \"null\"\n[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"n\"]\n").unwrap();
    let env = etc.join("env");
    std::fs::write(&env, "MNS_ACCESS_KEY_SECRET=s\n").unwrap();
    // nogroup stands for the ossnotify group; root owns all.
    const NOBODY: u32 = 65534;
    chown(&etc, Some(0), Some(NOBODY)).unwrap();
    chown(&config, Some(0), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(dir_mode)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(file_mode)).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = support::bin().get_program().to_owned();
    let as_user = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_user(&[
        bin.as_os_str(),
        "validate".as_ref(),
        "-c".as_ref(),
        config.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "the service's user cannot read its config: {}{}",
        support::text(&out.stdout),
        support::text(&out.stderr)
    );
    // Someone in neither the owner nor the group cannot (the other bits).
    let other = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65533", "--clear-groups", "cat"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!other.status.success(), "others can read the config");
    let secrets = as_user(&["cat".as_ref(), env.as_os_str()]);
    assert!(
        !secrets.status.success(),
        "the service's user can read the secrets' file"
    );
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

/// The documents of a kustomization, rendered as `kubectl apply -k` would
/// gather them (resources, files or directories, recursively), and the
/// files its ConfigMap generators read.
fn kustomize(dir: &std::path::Path) -> (Vec<serde_yaml_ng::Value>, Vec<std::path::PathBuf>) {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let k: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let (mut docs, mut files) = (Vec::new(), Vec::new());
    for r in k["resources"].as_sequence().unwrap() {
        let path = dir.join(r.as_str().unwrap());
        if path.is_dir() {
            let (d, f) = kustomize(&path);
            docs.extend(d);
            files.extend(f);
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                docs.push(serde::Deserialize::deserialize(doc).unwrap());
            }
        }
    }
    if let Some(gens) = k["configMapGenerator"].as_sequence() {
        for g in gens {
            assert_eq!(g["name"], "ossnotify");
            for f in g["files"].as_sequence().unwrap() {
                files.push(dir.join(f.as_str().unwrap()));
            }
        }
    }
    (docs, files)
}

/// Checks a layout: its workload of `kind` probes /health and /ready, reads
/// the generated ConfigMap and the MNS Secret, and is what the Service and
/// the disruption budget select; its config validates. Returns the
/// workload and the config's text.
fn layout(dir: &str, kind: &str) -> (serde_yaml_ng::Value, String) {
    let (docs, files) = kustomize(&support::repo(dir));
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [kind, "PodDisruptionBudget", "Service"]
            .into_iter()
            .collect(),
        "{dir}"
    );
    let of = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap();
    let w = of(kind);
    let labels = &w["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&w["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&of("Service")["spec"]["selector"], labels);
    assert_eq!(
        &of("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        labels
    );
    let pod = &w["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "ossnotify-mns");
    // /tap is behind a token from a Secret of its own.
    assert_eq!(c["envFrom"][1]["secretRef"]["name"], "ossnotify-tap");
    assert!(pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v["configMap"]["name"] == "ossnotify"));
    // Its config is a valid config (structure; credentials come from the Secret).
    assert_eq!(files.len(), 1, "{dir}: {files:?}");
    let out = support::run(
        &[
            "validate",
            "--no-environment",
            "-c",
            files[0].to_str().unwrap(),
        ],
        b"",
    );
    let said = support::text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{dir}: {said}");
    // It listens on every address, so its tap needs the token: no warning.
    assert!(!said.contains("tap_token"), "{dir}: {said}");
    let config = std::fs::read_to_string(&files[0]).unwrap();
    assert!(config.contains("tap_token = \"${OSSNOTIFY_TAP_TOKEN}\""));
    (w.clone(), config)
}

#[test]
fn the_kubernetes_layouts_are_stateless_with_kafka_stores_and_a_statefulset_with_disk_stores() {
    let (deployment, config) = layout("deploy/kubernetes", "Deployment");
    // Stateless: the Kafka stores (the default), and no volume but the config.
    assert!(!config.contains("store = \"disk\""), "{config}");
    assert!(config.contains("type = \"kafka\""));
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let (statefulset, config) = layout("deploy/kubernetes/disk-store", "StatefulSet");
    assert!(config.contains("[backlog]\nstore = \"disk\""), "{config}");
    assert!(
        config.contains("[dead_letter]\nstore = \"disk\""),
        "{config}"
    );
    assert_eq!(
        statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    // The ServiceMonitor example scrapes the Service's port.
    let sm: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(support::repo("deploy/kubernetes/servicemonitor.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    // The NetworkPolicy example keeps the metrics port to the pods' selector.
    let np: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(support::repo("deploy/kubernetes/networkpolicy.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(np["spec"]["podSelector"]["matchLabels"]["app"], "ossnotify");
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 9898);
}

/// `helm` ARGS on the chart (installed into .tools by scripts/helm.sh if
/// missing): its status and what it printed.
fn helm(args: &[&str]) -> (bool, String) {
    let chart = support::repo("deploy/helm/ossnotify");
    let out = std::process::Command::new("bash")
        .arg(support::repo("scripts/helm.sh"))
        .args(
            args.iter()
                .map(|a| a.replace("CHART", chart.to_str().unwrap())),
        )
        .output()
        .expect("run scripts/helm.sh");
    let mut said = support::text(&out.stdout);
    said.push_str(&support::text(&out.stderr));
    (out.status.success(), said)
}

/// The chart rendered with `set` (helm --set pairs) and, if given, the
/// config file: its documents by kind.
fn render(set: &[&str], config: Option<&std::path::Path>) -> Vec<serde_yaml_ng::Value> {
    let mut args = vec!["template", "r", "CHART"];
    let file;
    if let Some(c) = config {
        file = format!("config={}", c.display());
        args.extend(["--set-file", &file]);
    }
    for s in set {
        args.extend(["--set", s]);
    }
    let (ok, text) = helm(&args);
    assert!(ok, "helm {args:?}: {text}");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &serde_yaml_ng::Value| !d.is_null())
        .collect()
}

/// Checks a rendering: its workload of `kind` probes /health and /ready on
/// the metrics port, has resources, reads the ConfigMap and the Secret,
/// and is what the Service and the disruption budget select; the config
/// the ConfigMap carries validates. Returns the workload and the config
/// annotation's checksum.
fn chart(
    docs: &[serde_yaml_ng::Value],
    kind: &str,
    dir: &std::path::Path,
) -> (serde_yaml_ng::Value, String) {
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            kind,
            "ConfigMap",
            "Secret",
            "PodDisruptionBudget",
            "Service"
        ]
        .into_iter()
        .collect()
    );
    let of = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap();
    let w = of(kind);
    let labels = &w["spec"]["selector"]["matchLabels"];
    for (k, v) in labels.as_mapping().unwrap() {
        assert_eq!(&w["spec"]["template"]["metadata"]["labels"][k], v);
    }
    assert_eq!(&of("Service")["spec"]["selector"], labels);
    assert_eq!(
        &of("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        labels
    );
    let pod = &w["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["ports"][0]["name"], "metrics");
    for (probe, path) in [
        ("startupProbe", "/health"),
        ("livenessProbe", "/health"),
        ("readinessProbe", "/ready"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    assert!(c["resources"]["requests"]["memory"].is_string(), "{c:?}");
    assert!(c["resources"]["limits"]["memory"].is_string(), "{c:?}");
    let secret = of("Secret");
    assert_eq!(
        c["envFrom"][0]["secretRef"]["name"],
        secret["metadata"]["name"]
    );
    // /tap's token is generated when not given; empty credentials are left
    // out, so the daemon names what is missing.
    assert!(
        secret["data"]["OSSNOTIFY_TAP_TOKEN"]
            .as_str()
            .unwrap()
            .len()
            >= 32
    );
    assert!(secret["data"]["MNS_ACCESS_KEY_ID"].is_null(), "{secret:?}");
    let cm = of("ConfigMap");
    assert!(pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v["configMap"]["name"] == cm["metadata"]["name"]));
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/etc/ossnotify");
    assert_eq!(
        c["args"].as_sequence().unwrap().last().unwrap(),
        "/etc/ossnotify/config.toml"
    );
    let config = cm["data"]["config.toml"].as_str().unwrap();
    let path = dir.join(format!("{kind}.toml"));
    std::fs::write(&path, config).unwrap();
    let out = support::run(
        &["validate", "--no-environment", "-c", path.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stdout));
    let sum = w["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sum.len(), 64, "{sum}");
    (w.clone(), sum)
}

#[test]
fn the_helm_chart_lints_and_renders_a_stateless_deployment_or_a_statefulset_by_store() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, said) = helm(&["lint", "--strict", "CHART"]);
    assert!(ok, "{said}");

    // The default: the Kafka stores, a Deployment with no volume but the config.
    let docs = render(&[], None);
    let (deployment, sum) = chart(&docs, "Deployment", dir.path());
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    // Rendering again changes nothing; an edited config changes the
    // checksum, so the pods roll.
    assert_eq!(chart(&render(&[], None), "Deployment", dir.path()).1, sum);
    let edited = dir.path().join("edited.toml");
    let config = render(&[], None)
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap()["data"]["config.toml"]
        .as_str()
        .unwrap()
        .replace("bucket = \"photos\"", "bucket = \"videos\"");
    std::fs::write(&edited, config).unwrap();
    assert_ne!(
        chart(&render(&[], Some(&edited)), "Deployment", dir.path()).1,
        sum
    );

    // The disk stores: a StatefulSet with a volume claim per pod, mounted
    // where the config keeps them.
    let disk = dir.path().join("disk.toml");
    std::fs::write(
        &disk,
        std::fs::read_to_string(support::repo("deploy/kubernetes/disk-store/config.toml")).unwrap(),
    )
    .unwrap();
    let docs = render(&["store=disk"], Some(&disk));
    let (sts, _) = chart(&docs, "StatefulSet", dir.path());
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    let mounts = &sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert_eq!(mounts[1]["name"], "state");
    assert_eq!(mounts[1]["mountPath"], "/var/lib/ossnotify");
    assert!(std::fs::read_to_string(&disk)
        .unwrap()
        .contains("path = \"/var/lib/ossnotify/"));

    // A store that does not agree with the config is refused, saying why.
    let (ok, said) = helm(&["template", "r", "CHART", "--set", "store=disk"]);
    assert!(!ok);
    assert!(
        said.contains("store is \"disk\" but the config keeps the Kafka stores"),
        "{said}"
    );
    let d = disk.to_str().unwrap();
    let (ok, said) = helm(&[
        "template",
        "r",
        "CHART",
        "--set-file",
        &format!("config={d}"),
    ]);
    assert!(!ok);
    assert!(
        said.contains("a Deployment keeps nothing on disk"),
        "{said}"
    );

    // The optional parts: a ServiceMonitor on the Service's port, a
    // NetworkPolicy keeping that port to the pods' namespaces listed, and
    // an existing Secret instead of the chart's.
    let docs = render(
        &[
            "serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "secret.existing=mine",
        ],
        None,
    );
    let of = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap();
    assert!(!docs.iter().any(|d| d["kind"] == "Secret"));
    let sm = of("ServiceMonitor");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        of("Service")["spec"]["selector"]
    );
    let np = of("NetworkPolicy");
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 9898);
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"],
        "monitoring"
    );
    let c = &of("Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "mine");
}
