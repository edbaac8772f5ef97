//! `ossnotify validate`: every error names file, line, column and field;
//! warnings for what the policy makes inert; secrets never printed.

mod support;

use support::{validate, Dir};

const SINKS: &str = r#"
[sinks.oss-events]
type = "stdout"
"#;

fn rule(id: &str, events: &str, resources: &str) -> String {
    format!(
        "\n[[rules]]\nid = \"{id}\"\nbucket = \"b\"\nevents = [{events}]\nresources = [{resources}]\nsinks = [\"oss-events\"]\n"
    )
}

fn check(config: &str, expect_code: i32, expect_lines: &[&str]) -> String {
    let d = Dir::new();
    let p = d.write("ossnotify.toml", config);
    let (code, out) = validate(&p);
    let out = out.replace(&d.dir.path().display().to_string(), "DIR");
    for want in expect_lines {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(code, expect_code, "{out}");
    out
}

#[test]
fn a_valid_config_passes() {
    let cfg = format!(
        "{SINKS}{}",
        rule("r", "\"ObjectCreated:PutObject\"", "\"a/*\"")
    );
    check(
        &cfg,
        0,
        &["DIR/ossnotify.toml: valid: 1 rules, 1 sinks, 0 warnings"],
    );
}

#[test]
fn resource_with_two_stars() {
    let mut cfg = SINKS.to_string();
    for i in 0..3 {
        cfg += &rule(
            &format!("r{i}"),
            "\"ObjectCreated:PutObject\"",
            &format!("\"k{i}\""),
        );
    }
    cfg += &rule("r3", "\"ObjectCreated:PutObject\"", "\"ok/*\", \"a*b*\"");
    check(
        &cfg,
        1,
        &["error: DIR/ossnotify.toml:30:22: rules[3].resources[1]: more than one '*' in \"a*b*\""],
    );
}

#[test]
fn unknown_sink_type_lists_the_known_ones() {
    let cfg = "[sinks.oss-events]\ntype = \"msn_topic\"\n";
    check(
        cfg,
        1,
        &["error: DIR/ossnotify.toml:2:8: sinks.oss-events.type: unknown sink type \"msn_topic\"; expected one of mns_topic, mns_queue, http, kafka, file, stdout, null"],
    );
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    check(
        "[pipeline]\nworkerz = 2\n",
        1,
        &["DIR/ossnotify.toml:2:1: pipeline.workerz: unknown field `workerz`"],
    );
    check(
        "[sinks.s]\ntype = \"null\"\nurl = \"x\"\n",
        1,
        &["DIR/ossnotify.toml:3:1: sinks.s.url: unknown field `url`"],
    );
    check(
        &format!("{SINKS}\n[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"oss-events\"]\nprefix = \"a/\"\n"),
        1,
        &["rules[0].prefix: unknown field `prefix`"],
    );
    check(
        "sourc = 1\n",
        1,
        &["DIR/ossnotify.toml:1:1: sourc: unknown field `sourc`"],
    );
}

#[test]
fn wrong_types_and_bad_values_name_the_field() {
    check("[pipeline]\nworkers = \"two\"\n", 1, &["DIR/ossnotify.toml:2:11: pipeline.workers: invalid type: string \"two\", expected usize"]);
    check(
        "[pipeline]\nworkers = 0\n",
        1,
        &["pipeline.workers: must be at least 1"],
    );
    check(
        "[sinks.q]\ntype = \"mns_queue\"\nendpoint = \"ftp://x\"\nqueue = \"1q\"\naccess_key_id = \"id\"\naccess_key_secret = \"s\"\nbatch_size = 17\n",
        1,
        &[
            "DIR/ossnotify.toml:3:12: sinks.q.endpoint: \"ftp://x\" is not an http:// or https:// URL",
            "DIR/ossnotify.toml:4:9: sinks.q.queue: \"1q\" is not an MNS name",
            "DIR/ossnotify.toml:7:14: sinks.q.batch_size: must be 1 to 16",
        ],
    );
    check(
        "[sinks.t]\ntype = \"mns_topic\"\nendpoint = \"https://x\"\ntopic = \"t\"\naccess_key_id = \"id\"\naccess_key_secret = \"s\"\nmessage_tag = \"seventeen-chars-x\"\n",
        1,
        &["DIR/ossnotify.toml:7:15: sinks.t.message_tag: must be 1 to 16 characters"],
    );
    check(
        "[source]\ntype = \"kafka\"\n",
        1,
        &[
            "source.brokers: required for a kafka source",
            "source.topics",
            "source.group_id",
        ],
    );
    check("not toml = = 1\n", 1, &["error: DIR/ossnotify.toml:1:"]);
}

#[test]
fn rule_fields_are_checked() {
    let cfg = format!(
        "{SINKS}{}{}",
        rule("dup", "\"ObjectCreated:PutObject\"", "\"a/*\""),
        rule(
            "dup",
            "\"ObjectCreated:Put\", \"ObjectModified:All\"",
            "\"\""
        )
    );
    check(
        &cfg,
        1,
        &[
            "DIR/ossnotify.toml:13:6: rules[1].id: duplicate rule id \"dup\"; first defined at DIR/ossnotify.toml:6:6",
            "rules[1].events[0]: unknown event type \"ObjectCreated:Put\"",
            "rules[1].events[1]: unknown event type \"ObjectModified:All\": OSS has no ObjectModified:All; use \"ObjectModified:*\"",
            "rules[1].resources[0]: empty resource",
        ],
    );
    let cfg = "[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"nope\"]\n";
    check(cfg, 1, &["DIR/ossnotify.toml:5:10: rules[0].sinks[0]: unknown sink \"nope\"; no sinks are defined"]);
    let cfg = format!(
        "{SINKS}\n[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = []\nsinks = [\"oss-events\"]\n"
    );
    check(&cfg, 1, &["rules[0].events: is empty"]);
    let cfg = format!("{SINKS}\n[[rules]]\nid = \"r\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"oss-events\"]\n");
    check(&cfg, 1, &["rules[0]: missing field `bucket`"]);
}

#[test]
fn overlapping_rules_are_refused_unless_allowed() {
    let rules = format!(
        "{}{}",
        rule("photos", "\"ObjectCreated:All\"", "\"photos/*\""),
        rule("jpegs", "\"ObjectCreated:PutObject\"", "\"*.jpg\"")
    );
    let out = check(
        &format!("{SINKS}{rules}"),
        1,
        &["error: DIR/ossnotify.toml:13:6: rules[1]: rules \"photos\" and \"jpegs\" of bucket \"b\" overlap: both match ObjectCreated:PutObject on key \"photos/.jpg\" (the other rule is at DIR/ossnotify.toml:6:6)"],
    );
    assert!(out.contains("allow_overlapping_rules"));
    check(
        &format!("[policy]\nallow_overlapping_rules = true\n{SINKS}{rules}"),
        0,
        &["warning: DIR/ossnotify.toml:15:6: rules[1]: rules \"photos\" and \"jpegs\""],
    );
}

#[test]
fn policy_inert_rules_are_warned_about() {
    let cfg = format!(
        "{SINKS}\n[[rules]]\nid = \"dubai\"\nbucket = \"b1\"\nregion = \"me-east-1\"\nevents = [\"ObjectCreated:PutObject\"]\nsinks = [\"oss-events\"]\n\
         \n[[rules]]\nid = \"hz-all\"\nbucket = \"b2\"\nregion = \"oss-cn-hangzhou\"\nevents = [\"ObjectCreated:All\"]\nsinks = [\"oss-events\"]\n\
         \n[[rules]]\nid = \"hk-all\"\nbucket = \"b3\"\nregion = \"cn-hongkong\"\nevents = [\"ObjectRemoved:All\"]\nsinks = [\"oss-events\"]\n"
    );
    let out = check(
        &cfg,
        0,
        &[
            "warning: DIR/ossnotify.toml:8:10: rules[0].region: region me-east-1 gets no notifications under the region policy; rule \"dubai\" is inert",
            "warning: DIR/ossnotify.toml:16:11: rules[1].events[0]: ObjectCreated:All takes no effect in region cn-hangzhou",
            "valid: 3 rules, 1 sinks, 2 warnings",
        ],
    );
    assert!(!out.contains("hk-all"), "{out}");
    // With the policy off, nothing to warn about.
    check(
        &format!("[policy]\nregion_restrictions = false\n{cfg}"),
        0,
        &["0 warnings"],
    );
}

#[test]
fn included_files_and_rules_dir_name_their_own_file() {
    let d = Dir::new();
    d.write(
        "more.toml",
        &rule("inc", "\"ObjectCreated:PutObject\"", "\"x*y*\""),
    );
    d.write(
        "rules.d/a.toml",
        &rule("dir-a", "\"ObjectCreated:PutObject\"", "\"a/*\""),
    );
    d.write("rules.d/b.toml", "[[rules]]\nid = \"dir-b\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"oss-events\"]\nextra = 1\n");
    d.write("rules.d/ignored.txt", "not toml");
    let p = d.write(
        "main.toml",
        &format!("include = [\"more.toml\", \"missing.toml\"]\nrules_dir = \"rules.d\"\n{SINKS}"),
    );
    let (code, out) = validate(&p);
    let out = out.replace(&d.dir.path().display().to_string(), "DIR");
    assert_eq!(code, 1, "{out}");
    for want in [
        "error: DIR/more.toml:6:14: rules[0].resources[0]: more than one '*' in \"x*y*\"",
        "error: DIR/main.toml:1:25: include: cannot read DIR/missing.toml",
        "error: DIR/rules.d/b.toml:6:1: rules[0].extra: unknown field `extra`",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn env_interpolation_and_secrets_never_printed() {
    let d = Dir::new();
    let p = d.write(
        "c.toml",
        "[sinks.t]\ntype = \"mns_topic\"\nendpoint = \"${OSSN_TEST_ENDPOINT}\"\ntopic = \"t\"\naccess_key_id = \"${OSSN_TEST_ID}\"\naccess_key_secret = \"${OSSN_TEST_SECRET}\"\nmax_in_flight = 0\n",
    );
    let out = support::bin()
        .args(["validate", "-c", p.to_str().unwrap()])
        .env(
            "OSSN_TEST_ENDPOINT",
            "https://1.mns.cn-shenzhen.aliyuncs.com",
        )
        .env("OSSN_TEST_ID", "LTAIexample")
        .env("OSSN_TEST_SECRET", "very-secret-value")
        .output()
        .unwrap();
    let stdout = support::text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("sinks.t.max_in_flight: must be at least 1"),
        "{stdout}"
    );
    assert!(!stdout.contains("very-secret-value"));
    // Unset variable: named, located.
    let out = support::bin()
        .args(["validate", "-c", p.to_str().unwrap()])
        .env_remove("OSSN_TEST_SECRET")
        .env("OSSN_TEST_ENDPOINT", "https://x")
        .env("OSSN_TEST_ID", "id")
        .output()
        .unwrap();
    let stdout = support::text(&out.stdout).replace(&d.dir.path().display().to_string(), "DIR");
    assert!(
        stdout.contains("error: DIR/c.toml:6:21: sinks.t.access_key_secret: environment variable OSSN_TEST_SECRET is not set"),
        "{stdout}"
    );
}

#[test]
fn shipped_configs_are_valid() {
    for name in [
        "configs/demo.toml",
        "configs/demo-run.toml",
        "configs/reference.toml",
    ] {
        let out = support::bin()
            .args(["validate", "-c", support::repo(name).to_str().unwrap()])
            .env("MNS_ACCESS_KEY_ID", "id")
            .env("MNS_ACCESS_KEY_SECRET", "secret")
            .env("WEBHOOK_TOKEN", "token")
            .env("OSSNOTIFY_DEMO_MNS", "http://127.0.0.1:9")
            .env("OSSNOTIFY_DEMO_BROKERS", "127.0.0.1:9")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            support::text(&out.stdout)
        );
    }
}

/// `Debug` of a whole loaded config shows no credential: MNS secrets, a
/// webhook URL's user, password and token, its headers, and librdkafka's
/// credential properties (source and Kafka sink).
#[test]
fn debug_of_a_config_hides_every_secret() {
    let d = support::Dir::new();
    let cfg = d.write(
        "secrets.toml",
        r#"[source]
type = "kafka"
brokers = "127.0.0.1:9092"
topics = ["t"]
group_id = "g"
[source.librdkafka]
"sasl.password" = "SRC-PASSWORD"

[sinks.mns]
type = "mns_queue"
endpoint = "http://127.0.0.1:9900"
queue = "q"
access_key_id = "AK"
access_key_secret = "MNS-SECRET"

[sinks.hook]
type = "http"
url = "https://bob:URL-PASSWORD@hooks.example.com/x?token=URL-TOKEN"
headers = { Authorization = "Bearer HEADER-TOKEN" }

[sinks.k]
type = "kafka"
brokers = "127.0.0.1:9092"
topic = "out"
[sinks.k.librdkafka]
"sasl.password" = "SINK-PASSWORD"

[[rules]]
id = "r"
bucket = "b"
events = ["ObjectCreated:PutObject"]
sinks = ["mns", "hook", "k"]
"#,
    );
    let loaded = ossnotify::config::load(&cfg).unwrap_or_else(|d| panic!("{d:?}"));
    let shown = format!("{:?}", loaded.config);
    for secret in [
        "SRC-PASSWORD",
        "MNS-SECRET",
        "URL-PASSWORD",
        "URL-TOKEN",
        "HEADER-TOKEN",
        "SINK-PASSWORD",
    ] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    // What is not secret still shows.
    assert!(
        shown.contains("hooks.example.com") && shown.contains("\"out\""),
        "{shown}"
    );
}

/// An unset variable is one error, not a cascade of checks on the value it
/// left behind; `validate --no-environment` checks the structure alone.
#[test]
fn unset_variables_give_one_error_each_and_no_environment_checks_structure() {
    let d = Dir::new();
    let good = d.write(
        "deploy.toml",
        r#"[sinks.t]
type = "mns_topic"
endpoint = "${OSSN_DEPLOY_ENDPOINT}"
topic = "t"
access_key_id = "${OSSN_DEPLOY_ID}"
access_key_secret = "${OSSN_DEPLOY_SECRET}"

[[rules]]
id = "r"
bucket = "b"
events = ["ObjectCreated:PutObject"]
sinks = ["t"]
"#,
    );
    let out = support::bin()
        .args(["validate", "-c", good.to_str().unwrap()])
        .env_remove("OSSN_DEPLOY_ENDPOINT")
        .env_remove("OSSN_DEPLOY_ID")
        .env_remove("OSSN_DEPLOY_SECRET")
        .output()
        .unwrap();
    let stdout = support::text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 3, "{stdout}");
    assert!(
        errors.iter().all(|e| e.contains("is not set")),
        "a cascade: {stdout}"
    );
    // Without the environment: valid.
    let out = support::bin()
        .args(["validate", "--no-environment", "-c", good.to_str().unwrap()])
        .env_remove("OSSN_DEPLOY_ENDPOINT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stdout));
    // …but a structural error is still one.
    let bad = d.write(
        "bad.toml",
        &std::fs::read_to_string(&good)
            .unwrap()
            .replace("topic = \"t\"", "topic = \"t\"\nmax_in_flight = 0"),
    );
    let out = support::bin()
        .args(["validate", "--no-environment", "-c", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = support::text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("sinks.t.max_in_flight: must be at least 1"),
        "{stdout}"
    );
}

/// One mistake, one error: a mistyped key of a sink that three rules use
/// is said once, at the key, and the summary counts one.
#[test]
fn a_mistake_in_a_sink_is_one_error_however_many_rules_use_it() {
    let mut cfg = String::from(
        "[sinks.q]\ntype = \"mns_queue\"\nendpoint = \"http://127.0.0.1:9\"\nqueu = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\n",
    );
    for id in ["a", "b", "c"] {
        cfg.push_str(&format!(
            "\n[[rules]]\nid = \"{id}\"\nbucket = \"{id}\"\nevents = [\"ObjectCreated:PutObject\"]\nsinks = [\"q\"]\n"
        ));
    }
    let out = check(
        &cfg,
        1,
        &[
            "error: DIR/ossnotify.toml:4:1: sinks.q.queu: unknown field `queu`",
            "DIR/ossnotify.toml: invalid: 1 error\n",
        ],
    );
    assert_eq!(out.matches("error:").count(), 1, "{out}");
}

/// Keys that moved into `[sinks.NAME.request]` and `[sinks.NAME.batch]`
/// still load from the sink's own table, each with a warning naming its
/// new place; the nested form loads without one; a key given both ways is
/// an error, and an unknown key in a nested table is located.
#[test]
fn flat_sink_keys_still_load_with_a_warning_naming_their_new_place() {
    let queue = "[sinks.q]\ntype = \"mns_queue\"\nendpoint = \"http://127.0.0.1:9\"\nqueue = \"q\"\naccess_key_id = \"id\"\naccess_key_secret = \"s\"\n";
    let hook = "[sinks.h]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/x\"\n";
    let rules = "[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"q\", \"h\"]\n";
    let flat = format!(
        "{queue}batch_size = 8\nlinger_ms = 2\nmax_in_flight = 4\nrequest_timeout_ms = 1000\n{hook}batch = \"ndjson\"\nmax_batch = 50\n{rules}"
    );
    check(
        &flat,
        0,
        &[
            "DIR/ossnotify.toml:7:1: sinks.q.batch_size: deprecated: write it as `max_messages` in [sinks.q.batch]",
            "DIR/ossnotify.toml:8:1: sinks.q.linger_ms: deprecated: write it as `linger_ms` in [sinks.q.batch]",
            "DIR/ossnotify.toml:9:1: sinks.q.max_in_flight: deprecated: write it as `max_in_flight` in [sinks.q.request]",
            "DIR/ossnotify.toml:10:1: sinks.q.request_timeout_ms: deprecated: write it as `timeout_ms` in [sinks.q.request]",
            "sinks.h.batch: deprecated: write it as `mode` in [sinks.h.batch]",
            "sinks.h.max_batch: deprecated: write it as `max_messages` in [sinks.h.batch]",
            "valid: 1 rules, 2 sinks, 6 warnings",
        ],
    );
    let nested = format!(
        "{queue}batch = {{ max_messages = 8, linger_ms = 2 }}\nrequest = {{ max_in_flight = 4, timeout_ms = 1000 }}\n{hook}batch = {{ mode = \"ndjson\", max_messages = 50 }}\n{rules}"
    );
    check(&nested, 0, &["valid: 1 rules, 2 sinks, 0 warnings"]);
    let both =
        format!("{queue}max_in_flight = 4\nrequest = {{ max_in_flight = 5 }}\n{hook}{rules}");
    check(
        &both,
        1,
        &["DIR/ossnotify.toml:7:1: sinks.q.max_in_flight: given twice: here and as `max_in_flight` in [sinks.q.request]"],
    );
    let unknown = format!("{queue}batch = {{ linger = 3 }}\n{hook}{rules}");
    check(
        &unknown,
        1,
        &[
            "DIR/ossnotify.toml:7:",
            "sinks.q.batch.linger: unknown field `linger`",
        ],
    );
}
