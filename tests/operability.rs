//! Operating it without having written it (SPEC §6, "every failure is told
//! with its cause"), against real `ossnotify run` processes:
//!
//! - a sink on a closed port: the log names the refused connection for
//!   that sink, at a limited rate, and the line that says its breaker opened
//!   names the last cause.

mod support;

/// `n` PutObject records of bucket `b`.
fn records(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"b","object":"k-{i}","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r-{i}","http_status":200}}"#
            ) + "\n"
        })
        .collect()
}

#[test]
fn a_sink_on_a_closed_port_says_why_and_its_breaker_names_the_cause() {
    let d = support::Dir::new();
    let input = d.write("in.ndjson", &records(40));
    let closed = support::free_port();
    let cfg = d.write(
        "run.toml",
        &format!(
            r#"[source]
type = "file"
path = "{input}"

[dead_letter]
path = "{dl}"

[sinks.hook]
type = "http"
url = "http://127.0.0.1:{closed}/events"

[sinks.hook.retry]
max_attempts = 2
initial_backoff_ms = 10
max_backoff_ms = 20

[sinks.hook.breaker]
failures = 3

[[rules]]
id = "all"
bucket = "b"
events = ["ObjectCreated:*"]
sinks = ["hook"]
"#,
            input = input.display(),
            dl = d.path("state").display(),
        ),
    );
    let started = std::time::Instant::now();
    let (code, log) = support::Member::start(&cfg, d.path("run.log"), "info")
        .wait_exit(std::time::Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("transient failure") && l.contains("sink=\"hook\""))
        .collect();
    assert!(
        refused
            .first()
            .is_some_and(|l| l.contains("Connection refused")),
        "no line names the refused connection:\n{log}"
    );
    // At a limited rate: one line for this sink and cause, not one per try.
    assert_eq!(refused.len(), 1, "{log}");
    let open = log
        .lines()
        .find(|l| l.contains("circuit breaker open"))
        .unwrap_or_else(|| panic!("the breaker never opened:\n{log}"));
    assert!(
        open.contains("last_cause=") && open.contains("Connection refused"),
        "{open}"
    );
    assert_eq!(open.matches("circuit breaker open").count(), 1, "{log}");
    assert!(log.contains("40 messages"), "{log}");
}

/// A GET of `/tap?limit=1` on loopback `port`, with `auth` as the
/// `Authorization` header: the status line.
fn tap_status(port: u16, auth: Option<&str>) -> String {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(s, "GET /tap?limit=1 HTTP/1.0\r\nHost: x\r\n{auth}\r\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// A stdin-fed daemon whose metrics server listens on every address
/// (`0.0.0.0`), with `tap_token` lines under `[metrics]`; it waits for the
/// server.
fn daemon_on_all_addresses(d: &support::Dir, tap_token: &str) -> (std::process::Child, u16) {
    let port = support::free_port();
    let cfg = d.write(
        "tap.toml",
        &format!(
            "[source]\ntype = \"stdin\"\n[dead_letter]\npath = \"{}\"\n[metrics]\nlisten = \"0.0.0.0:{port}\"\n{tap_token}\n[sinks.n]\ntype = \"null\"\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"n\"]\n",
            d.path("state").display()
        ),
    );
    let child = support::bin()
        .args(["run", "-c", cfg.to_str().unwrap()])
        .env("TAP_TOKEN", "s3cret-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while support::http_get(port, "/health").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no metrics server");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (child, port)
}

#[test]
fn the_tap_off_loopback_needs_its_token() {
    let d = support::Dir::new();
    // No token: /tap is off on 0.0.0.0; /metrics and /health are not.
    let (mut child, port) = daemon_on_all_addresses(&d, "");
    assert_eq!(tap_status(port, None), "HTTP/1.0 404 Not Found");
    assert!(support::http_get(port, "/metrics").starts_with("HTTP/1.0 200"));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // validate says so.
    let (code, out) = support::validate(&d.path("tap.toml"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("tap_token is not set"), "{out}");

    // A token: 401 without it or with another, 200 with it.
    let (mut child, port) = daemon_on_all_addresses(&d, "tap_token = \"${TAP_TOKEN}\"");
    assert_eq!(tap_status(port, None), "HTTP/1.0 401 Unauthorized");
    assert_eq!(
        tap_status(port, Some("Bearer s3cret-tokeN")),
        "HTTP/1.0 401 Unauthorized"
    );
    assert_eq!(
        tap_status(port, Some("s3cret-token")),
        "HTTP/1.0 401 Unauthorized"
    );
    assert_eq!(
        tap_status(port, Some("Bearer s3cret-token")),
        "HTTP/1.0 200 OK"
    );
    // `ossnotify tap --token-env` sends it: one message, then exit 0.
    let tap = support::bin()
        .args([
            "tap",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--limit",
            "1",
        ])
        .args(["--token-env", "MY_TAP_TOKEN"])
        .env("MY_TAP_TOKEN", "s3cret-token")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(records(1).as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let out = tap.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    assert_eq!(support::text(&out.stdout).lines().count(), 1);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// Commands that send nothing need none of the sinks' secrets: `match`,
/// `test`, `dead-letter ls|stats|show` and `backlog ls|stats|show` run with
/// the credential variables unset; `run` (which sends) names the first one.
#[test]
fn read_only_commands_need_no_sink_secrets() {
    let d = support::Dir::new();
    let input = d.write("in.ndjson", &records(3));
    let cfg = d.write(
        "secrets.toml",
        &format!(
            r#"[source]
type = "file"
path = "{input}"

[dead_letter]
path = "{dl}"

[sinks.q]
type = "mns_queue"
endpoint = "http://127.0.0.1:9"
queue = "oss-events"
access_key_id = "${{OPS_TEST_MNS_KEY_ID}}"
access_key_secret = "${{OPS_TEST_MNS_KEY_SECRET}}"

[[rules]]
id = "all"
bucket = "b"
events = ["ObjectCreated:*"]
sinks = ["q"]
"#,
            input = input.display(),
            dl = d.path("state").display(),
        ),
    );
    let tests = d.write(
        "secrets.tests.toml",
        &format!(
            "[[tests]]\nname = \"a put notifies\"\nrecord = '{}'\n[[tests.expect]]\nrule = \"all\"\nkey = \"k-0\"\n",
            records(1).trim_end()
        ),
    );
    let c = cfg.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = support::bin()
            .args(args)
            .env_remove("OPS_TEST_MNS_KEY_ID")
            .env_remove("OPS_TEST_MNS_KEY_SECRET")
            .output()
            .unwrap();
        (
            out.status.code(),
            support::text(&out.stdout),
            support::text(&out.stderr),
        )
    };
    let (code, out, err) = run(&["match", "-c", c, input.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let (code, out, err) = run(&["test", "-c", c, tests.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    for cmd in [
        &["dead-letter", "ls"][..],
        &["dead-letter", "stats"],
        &["dead-letter", "show"],
        &["backlog", "ls"],
        &["backlog", "stats"],
        &["backlog", "show"],
    ] {
        let mut args = cmd.to_vec();
        args.extend_from_slice(&["-c", c]);
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(0), "{cmd:?}: {err}");
    }
    // What sends needs them.
    let (code, _, err) = run(&["run", "-c", c]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("environment variable OPS_TEST_MNS_KEY_ID is not set"),
        "{err}"
    );
}

/// Waits up to 20 s until `server` accepted `want` messages.
async fn wait_accepted(server: &ossnotify_mns_dev::DevServer, want: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.accepted().len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {want}",
            server.accepted().len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A config with an `mns_queue` sink `q` sending to `queue` on `endpoint`;
/// records come on stdin; `extra` goes at the end.
fn queue_config(
    d: &support::Dir,
    file: &str,
    endpoint: &str,
    queue: &str,
    extra: &str,
) -> std::path::PathBuf {
    d.write(
        file,
        &format!(
            r#"[source]
type = "stdin"

[dead_letter]
path = "{dl}"

[sinks.q]
type = "mns_queue"
endpoint = "{endpoint}"
queue = "{queue}"
access_key_id = "AK"
access_key_secret = "SK"

[[rules]]
id = "all"
bucket = "b"
events = ["ObjectCreated:*"]
sinks = ["q"]
{extra}"#,
            dl = d.path("state").display(),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_does_not_exist_is_refused_before_traffic() {
    let d = support::Dir::new();
    let server = support::mns_dev(support::dev_config()).await;
    let good = queue_config(&d, "good.toml", &server.endpoint(), "oss-events", "");
    let typo = queue_config(&d, "typo.toml", &server.endpoint(), "oss-eventz", "");
    // validate --check-sinks probes as run does.
    let check = |cfg: &std::path::Path| {
        let out = support::run(
            &["validate", "--check-sinks", "-c", cfg.to_str().unwrap()],
            b"",
        );
        (out.status.code(), support::text(&out.stdout))
    };
    let (code, out) = tokio::task::block_in_place(|| check(&typo));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("sink q: refused: QueueNotExist"), "{out}");
    let (code, out) = tokio::task::block_in_place(|| check(&good));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("sink q: ok"), "{out}");

    // run refuses to start on it, at once, naming the sink and the answer.
    let started = std::time::Instant::now();
    let out = tokio::task::block_in_place(|| {
        support::run(
            &["run", "-c", typo.to_str().unwrap()],
            records(2).as_bytes(),
        )
    });
    let err = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        err.contains("sink q: its destination refused the probe: QueueNotExist"),
        "{err}"
    );
    assert_eq!(server.accepted().len(), 0);

    // A reload to it is refused; messages keep going to the queue that exists.
    let port = support::free_port();
    let live = d.write(
        "live.toml",
        &std::fs::read_to_string(queue_config(
            &d,
            "x.toml",
            &server.endpoint(),
            "oss-events",
            &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
        ))
        .unwrap(),
    );
    let mut daemon = support::bin()
        .args(["run", "-c", live.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.path("live.log")).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = daemon.stdin.take().unwrap();
    let send = |stdin: &mut std::process::ChildStdin, n: usize| {
        use std::io::Write;
        stdin.write_all(records(n).as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    send(&mut stdin, 3);
    wait_accepted(&server, 3).await;
    let text = std::fs::read_to_string(&live)
        .unwrap()
        .replace("oss-events", "oss-eventz");
    std::fs::write(&live, text).unwrap();
    let log = || std::fs::read_to_string(d.path("live.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !log().contains("reload refused") {
        assert!(std::time::Instant::now() < deadline, "{}", log());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(log().contains("QueueNotExist"), "{}", log());
    send(&mut stdin, 3);
    wait_accepted(&server, 6).await;
    // Published with the next commit interval.
    let refused = "ossnotify_reloads_total{result=\"refused\"} 1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !support::http_get(port, "/metrics").contains(refused) {
        assert!(std::time::Instant::now() < deadline, "no {refused}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(stdin);
    assert!(daemon.wait().unwrap().success(), "{}", log());
    server.stop();
}
