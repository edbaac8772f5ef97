//! `ossnotify match`: SPEC §8's output lines, `--explain`, exit codes.

mod support;

use support::{repo, run, text};

fn demo(args: &[&str]) -> std::process::Output {
    let cfg = repo("configs/demo.toml");
    let input = repo("configs/demo-oplogs.ndjson");
    let mut all = vec![
        "match",
        "-c",
        cfg.to_str().unwrap(),
        input.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run(&all, b"")
}

#[test]
fn demo_messages_in_order_with_rule_and_sinks() {
    let out = demo(&[]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            let e = &l["message"]["events"][0];
            (
                l["ruleId"].as_str().unwrap().to_owned(),
                e["eventName"].as_str().unwrap().to_owned(),
                e["oss"]["object"]["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        (
            "photo-uploads",
            "ObjectCreated:PutObject",
            "uploads/cat.jpg",
        ),
        (
            "photo-downloads",
            "ObjectDownloaded:GetObject",
            "public/banner.png",
        ),
        (
            "photo-deletes",
            "ObjectRemoved:DeleteObjects",
            "uploads/old1.jpg",
        ),
        (
            "photo-deletes",
            "ObjectRemoved:DeleteObjects",
            "uploads/old2.jpg",
        ),
        (
            "log-writes",
            "ObjectCreated:AppendObject",
            "app/2024-05-01.log",
        ),
        (
            "log-replication",
            "ObjectReplication:ObjectCreated",
            "app/日志.log",
        ),
        (
            "photo-uploads",
            "ObjectCreated:CompleteMultipartUpload",
            "uploads/big \"raw\".png",
        ),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(summary, want);
    for l in &lines {
        assert_eq!(l["sinks"], serde_json::json!(["console"]));
        assert_eq!(l["message"]["events"][0]["oss"]["ruleId"], l["ruleId"]);
    }
    // The ruleId/sinks/message order of SPEC §8, compact.
    assert!(text(&out.stdout).starts_with("{\"ruleId\":\"photo-uploads\",\"sinks\":[\"console\"],\"message\":{\"events\":[{\"eventName\":"));
    let e = &lines[1]["message"]["events"][0];
    assert_eq!(e["oss"]["object"]["readFrom"], 0);
    assert_eq!(e["oss"]["object"]["readTo"], 1024);
    assert_eq!(e["eventTime"], "2024-05-01T02:00:01.000Z");
    assert_eq!(
        lines[4]["message"]["events"][0]["oss"]["object"]["position"],
        8192
    );
    assert_eq!(
        lines[4]["message"]["events"][0]["xVars"]["x:source"],
        "web-7"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("configs/demo-oplogs.ndjson:9: invalid record: field `request_id`: required field is missing"), "{stderr}");
    assert!(
        stderr.contains("configs/demo-oplogs.ndjson:11: invalid record: not valid JSON"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "match: 11 records: 7 messages, 1 without a matching rule, 2 skipped, 2 invalid\n"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("no message"), "explain is off: {stderr}");
}

#[test]
fn explain_says_why_nothing_matched() {
    let out = demo(&["--explain"]);
    let stderr = text(&out.stderr);
    for want in [
        ":3: no message: skipped: operation \"HeadObject\" produces no event",
        ":4: no message: key \"uploads/notes.txt\" matches no resource of the rules of bucket \"photos-shenzhen\" for ObjectCreated:PutObject (photo-uploads)",
        ":6: no message: skipped: http_status 403 is not 2xx",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in {stderr}");
    }
}

#[test]
fn explain_names_the_region_policy() {
    let d = support::Dir::new();
    let cfg = d.write(
        "c.toml",
        "[sinks.s]\ntype = \"stdout\"\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:All\"]\nsinks = [\"s\"]\n",
    );
    let rec = |loc: &str| {
        format!("{{\"time\":0,\"operation\":\"PutObject\",\"bucket\":\"b\",\"object\":\"k\",\"bucket_location\":\"{loc}\",\"owner_id\":\"o\",\"request_id\":\"r\",\"http_status\":200}}\n")
    };
    let input = format!(
        "{}{}{}",
        rec("oss-cn-hangzhou"),
        rec("oss-me-east-1"),
        rec("oss-us-west-1")
    );
    let out = run(
        &["match", "-c", cfg.to_str().unwrap(), "--explain"],
        input.as_bytes(),
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("<stdin>:1: no message: rules all subscribe to ObjectCreated:PutObject only through ObjectCreated:All, which the region policy applies only in [policy] all_wildcard_regions; the bucket's region is cn-hangzhou"), "{stderr}");
    assert!(
        stderr.contains("<stdin>:2: no message: region me-east-1 gets no notifications"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("\"region\":\"us-west-1\""));
}

#[test]
fn exit_codes() {
    let cfg = repo("configs/demo.toml");
    let out = run(
        &[
            "match",
            "-c",
            cfg.to_str().unwrap(),
            "/nonexistent/input.ndjson",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/input.ndjson"));
    let out = run(&["match", "-c", "/nonexistent/config.toml"], b"");
    assert_eq!(out.status.code(), Some(1));
    // Only invalid records: still success.
    let out = run(
        &["match", "-c", cfg.to_str().unwrap(), "-"],
        b"garbage\n{}\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).ends_with(
        "match: 2 records: 0 messages, 0 without a matching rule, 0 skipped, 2 invalid\n"
    ));
}

#[test]
fn resources_longer_than_oss_keys_are_accepted_with_a_warning_and_match() {
    // S3 and MinIO allow 1024-byte keys, Ceph longer: SPEC §3 sets no limit.
    let d = support::Dir::new();
    let dir = "d/".repeat(1000);
    let cfg = d.write(
        "c.toml",
        &format!(
            "[sinks.s]\ntype = \"stdout\"\n[[rules]]\nid = \"long\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nresources = [\"{dir}*.jpg\", \"*.png\"]\nsinks = [\"s\"]\n"
        ),
    );
    let rec = |key: &str| {
        format!("{{\"time\":0,\"operation\":\"PutObject\",\"bucket\":\"b\",\"object\":\"{key}\",\"bucket_location\":\"oss-cn-hangzhou\",\"owner_id\":\"o\",\"request_id\":\"r\",\"http_status\":200}}\n")
    };
    let input = format!(
        "{}{}{}",
        rec(&format!("{dir}x.jpg")),
        rec(&format!("{dir}x.gif")),
        rec(&format!("{}.png", "k".repeat(3000)))
    );
    let out = run(&["validate", "-c", cfg.to_str().unwrap()], b"");
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(
            ":7:14: rules[0].resources[0]: resource is 2005 bytes; OSS keys are at most 1023"
        ),
        "{said}"
    );
    let out = run(&["match", "-c", cfg.to_str().unwrap()], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let keys: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"]["events"][0]["oss"]["object"]["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        keys,
        vec![format!("{dir}x.jpg"), format!("{}.png", "k".repeat(3000))]
    );
}

/// `ossnotify test`: the demo's tests file passes (CI runs it, so a rule
/// change that stops a notification fails the build); a wrong expectation
/// fails with exit 1 and a diff naming the test and its line; a tests file
/// that does not parse is an error at its place.
#[test]
fn config_unit_tests_pass_fail_with_a_diff_and_locate_errors() {
    let cfg = repo("configs/demo.toml");
    let demo = repo("configs/demo.tests.toml");
    let out = run(
        &["test", "-c", cfg.to_str().unwrap(), demo.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "test: 6 passed, 0 failed\n");

    let d = support::Dir::new();
    let record = r#"{"time": "2024-05-01T02:00:03Z", "operation": "PutObject", "bucket": "photos-shenzhen", "object": "uploads/notes.png", "bucket_location": "oss-cn-shenzhen", "owner_id": "1", "request_id": "R", "http_status": 200, "object_size": 4321}"#;
    let elsewhere = r#"{"time": "2024-05-01T02:00:03Z", "operation": "DeleteObject", "bucket": "backups-hz", "object": "x", "bucket_location": "oss-cn-hangzhou", "owner_id": "1", "request_id": "R", "http_status": 200}"#;
    let tests = d.write(
        "t.toml",
        &format!(
            "[[tests]]\nname = \"right\"\nrecord = '{record}'\n[[tests.expect]]\nrule = \"photo-uploads\"\n[tests.expect.fields]\n\"oss.object.size\" = 4321\n\n[[tests]]\nname = \"wrong key\"\nrecord = '{record}'\n[[tests.expect]]\nrule = \"photo-uploads\"\nkey = \"uploads/notes.jpg\"\n\n[[tests]]\nname = \"expects none\"\nrecord = '{record}'\nexpect = []\n\n[[tests]]\nname = \"wrong size\"\nrecord = '{record}'\n[[tests.expect]]\nrule = \"photo-uploads\"\npartial = '{{\"events\":[{{\"region\":\"cn-hangzhou\"}}]}}'\n[tests.expect.fields]\n\"oss.object.size\" = 1234\n\n[[tests]]\nname = \"nothing matches\"\nrecord = '{elsewhere}'\n[[tests.expect]]\nrule = \"photo-uploads\"\n"
        ),
    );
    let out = run(
        &["test", "-c", cfg.to_str().unwrap(), tests.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    // Each failure names the differing field with both values, side by side.
    for want in [
        format!("FAIL \"wrong key\" ({}:9:1)\n  notification 1: differs\n    field   expected              produced\n    rule   photo-uploads         photo-uploads\n  ≠ key    \"uploads/notes.jpg\"   \"uploads/notes.png\"\n    produced JSON: {{\"events\"", tests.display()),
        "FAIL \"expects none\"".into(),
        "  notification 1: not expected; produced rule photo-uploads, sinks [console], ObjectCreated:PutObject, key \"uploads/notes.png\"\n".into(),
        // A dotted path, and a part of the JSON (only what it names counts).
        "    field                     expected        produced\n    rule                      photo-uploads   photo-uploads\n  ≠ oss.object.size           1234            4321\n  ≠ partial events.0.region   \"cn-hangzhou\"   \"cn-shenzhen\"\n".into(),
        // Nothing produced: why, as match --explain says it.
        "FAIL \"nothing matches\"".into(),
        "  expected 1 notifications, produced none: no rule is for bucket \"backups-hz\"\n    expected: rule photo-uploads\n".into(),
        "test: 1 passed, 4 failed\n".into(),
    ] {
        assert!(report.contains(&want), "{want:?} in:\n{report}");
    }
    assert!(!report.contains("FAIL \"right\""), "{report}");

    // JUnit XML for CI systems: it parses, one testcase a test.
    let out = run(
        &[
            "test",
            "-c",
            cfg.to_str().unwrap(),
            tests.to_str().unwrap(),
            "--format",
            "junit",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let xml = text(&out.stdout);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    "testcase" => cases += 1,
                    "failure" => failures += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert_eq!((cases, failures), (5, 4), "{xml}");
    assert!(xml.contains("tests=\"5\" failures=\"4\""), "{xml}");

    let bad = d.write("bad.toml", "[[tests]]\nname = \"no record\"\n");
    let out = run(
        &["test", "-c", cfg.to_str().unwrap(), bad.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: {}:1:1: missing field `record`",
            bad.display()
        )),
        "{err}"
    );
}

/// An error names its cause once: the library's errors carry it in their
/// message, and the CLI does not print it again from the error's chain.
#[test]
fn an_error_names_its_cause_once() {
    let out = run(
        &[
            "loadgen",
            "--file",
            "/nonexistent/dir/x.ndjson",
            "--records",
            "1",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: cannot write /nonexistent/dir/x.ndjson: "),
        "{err}"
    );
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}
