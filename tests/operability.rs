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
