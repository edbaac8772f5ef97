//! `ossnotify mns-dev` under abuse, as a process: its memory stays bounded
//! however much it accepts; slow headers, stalled bodies and idle
//! keep-alive connections are cut off; connections over the cap wait; a
//! failing `accept` (out of file descriptors) backs off instead of
//! spinning; and it serves HTTPS from `--tls-cert` and `--tls-key`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use ossnotify_sinks::mns::client::MnsClient;
use ossnotify_sinks::mns::xml::OutMessage;
use ossnotify_sinks::Secret;

/// A running `mns-dev` process and its endpoint; killed when dropped.
struct Dev {
    child: Child,
    endpoint: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// `ossnotify mns-dev` with topic `t` and `extra` flags, through `sh -c`
    /// with `prefix` before it (a `ulimit`).
    fn start(prefix: &str, extra: &[&str]) -> Dev {
        let bin = support::bin().get_program().to_owned();
        let cmd = format!(
            "{prefix} exec {} mns-dev --listen 127.0.0.1:0 --access-key-id AK --access-key-secret SK --topics t {}",
            bin.to_str().unwrap(),
            extra.join(" ")
        );
        let mut sh = std::process::Command::new("sh");
        sh.args(["-c", &cmd]);
        let (child, first) = support::start_mns_dev(sh);
        let endpoint = first
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("no endpoint in {first:?}"))
            .to_owned();
        Dev { child, endpoint }
    }

    fn addr(&self) -> String {
        self.endpoint.rsplit('/').next().unwrap().to_owned()
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// CPU time used so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// SIGTERM, then its stderr.
    fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Whether the server closes `s` within `within` (reads reach EOF or fail).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
        if t.elapsed() > within {
            return false;
        }
    }
}

#[test]
fn memory_stays_bounded_however_much_is_accepted() {
    let dev = Dev::start("", &["--keep-mib", "8"]);
    let n = 1600;
    let body = "x".repeat(60_000);
    block_on(async {
        let c = MnsClient::new(
            &dev.endpoint,
            "AK",
            Secret::from("SK".to_owned()),
            Duration::from_secs(10),
        )
        .unwrap();
        let m = OutMessage {
            body,
            ..OutMessage::default()
        };
        for _ in 0..n {
            c.publish("t", &m).await.unwrap();
        }
    });
    let rss = dev.status_kib("VmRSS:");
    let stderr = dev.stop();
    // 96 MB of bodies accepted; the window keeps 8 MiB of them.
    assert!(
        rss < 48 * 1024,
        "RSS {rss} KiB after accepting {n} messages of 60 KB"
    );
    assert!(
        stderr.contains(&format!("{n} messages accepted")),
        "{stderr}"
    );
}

#[test]
fn slow_headers_stalled_bodies_and_idle_connections_are_cut_off() {
    let dev = Dev::start(
        "",
        &["--header-timeout-secs", "1", "--idle-timeout-secs", "1"],
    );
    let mut idle = TcpStream::connect(dev.addr()).unwrap();
    let mut slow = TcpStream::connect(dev.addr()).unwrap();
    slow.write_all(b"POST /topics/t/messages HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut stalled = TcpStream::connect(dev.addr()).unwrap();
    stalled
        .write_all(
            b"POST /topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .unwrap();
    for (what, s) in [
        ("idle", &mut idle),
        ("slow headers", &mut slow),
        ("stalled body", &mut stalled),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(4)),
            "{what}: still open"
        );
    }
}

#[test]
fn connections_over_the_cap_wait_for_a_free_one() {
    let dev = Dev::start("", &["--max-connections", "2"]);
    let first = TcpStream::connect(dev.addr()).unwrap();
    let _second = TcpStream::connect(dev.addr()).unwrap();
    let mut third = TcpStream::connect(dev.addr()).unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(third.read(&mut buf).is_err(), "answered over the cap");
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = third.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn accept_errors_back_off_instead_of_spinning() {
    // 40 file descriptors: a few dozen connections exhaust them.
    let dev = Dev::start("ulimit -n 40;", &["--header-timeout-secs", "30"]);
    let conns: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(dev.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = dev.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = dev.cpu_ticks() - t0;
    drop(conns);
    let stderr = dev.stop();
    // A spinning accept loop burns ~200 ticks in 2 s (100 Hz).
    assert!(used < 40, "{used} ticks of CPU in 2 s with accept failing");
    let warned = stderr.matches("accept failed").count();
    assert!((1..=2).contains(&warned), "{warned} warnings: {stderr}");
}

#[test]
fn serves_https_from_tls_flags() {
    let d = support::Dir::new();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = d.write("cert.pem", &cert.cert.pem());
    let key_pem = d.write("key.pem", &cert.signing_key.serialize_pem());
    let dev = Dev::start(
        "",
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
        ],
    );
    assert!(
        dev.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        dev.endpoint
    );
    let endpoint = dev.endpoint.replace("127.0.0.1", "localhost");
    let pem = cert.cert.pem();
    block_on(async {
        let c = MnsClient::with_roots(
            &endpoint,
            "AK",
            Secret::from("SK".to_owned()),
            Duration::from_secs(5),
            Some(pem.as_bytes()),
        )
        .unwrap();
        let m = OutMessage {
            body: "over tls".into(),
            ..OutMessage::default()
        };
        c.publish("t", &m).await.unwrap();
    });
    let stderr = dev.stop();
    assert!(stderr.contains("1 messages accepted"), "{stderr}");
    // A key that does not parse is refused with the file named.
    let bad = d.write("bad.pem", "not a key");
    let out = support::run(
        &[
            "mns-dev",
            "--access-key-id",
            "AK",
            "--access-key-secret",
            "SK",
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            bad.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::text(&out.stderr).contains("bad.pem"),
        "{}",
        support::text(&out.stderr)
    );
}
