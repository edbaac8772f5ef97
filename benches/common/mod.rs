//! What the load harnesses share.

#![allow(dead_code)] // each harness uses a part

use std::io::{Read, Write};

/// The sum of the committed offsets the pipeline reports on its /metrics
/// (a plain HTTP GET: a Kafka client polling the group's offsets instead
/// kept a core busy and skewed the result).
pub fn committed(metrics: &str) -> i64 {
    let Ok(mut s) = std::net::TcpStream::connect(metrics) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("ossnotify_committed_offset{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

/// Starts the release `ossnotify run -c CONFIG` in its own process, its
/// log (stderr) in `log`.
pub fn spawn_run(config: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    spawn_run_of(
        std::path::Path::new(env!("CARGO_BIN_EXE_ossnotify")),
        config,
        log,
    )
}

/// [`spawn_run`] with another build of `ossnotify` (a baseline to compare
/// against in the same run).
pub fn spawn_run_of(
    bin: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Child {
    std::process::Command::new(bin)
        .args(["run", "-c", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Stops it as an operator would (SIGTERM) and checks it exited cleanly.
pub fn stop_run(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "ossnotify run exited with {status}");
}

/// A loopback address no one listens on now, for the pipeline's /metrics.
pub fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string()
}
