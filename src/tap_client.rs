//! `ossnotify tap`: attaches to a running daemon's `/tap` (its `[metrics]
//! listen` address) and prints one JSON line per message it produces:
//! `{"rule","sinks","event","bucket","key"}`, and with `--full` the
//! notification as `message`.
//! Messages the daemon dropped because this tap read too slowly are
//! reported on standard error; the daemon never waits for a tap.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Why a tap ended in error.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("--url {0:?}: expected http://HOST:PORT")]
    Url(String),
    #[error("cannot connect to {host}: {cause}")]
    Connect { host: String, cause: std::io::Error },
    #[error("{host}: {cause}")]
    Io { host: String, cause: std::io::Error },
    #[error("{host} closed the connection before answering")]
    Closed { host: String },
    #[error("{host} refused the tap: {answer}")]
    Refused { host: String, answer: String },
    #[error("{host} sent a line that is not JSON: {cause}")]
    NotJson {
        host: String,
        cause: serde_json::Error,
    },
    #[error("cannot write: {0}")]
    Write(std::io::Error),
    /// The stream ended before `--limit` was reached: the daemon stopped
    /// (or its connection broke).
    #[error("{host} ended the stream after {messages} messages: the daemon stopped or went away")]
    Ended { host: String, messages: u64 },
}

/// What to ask the daemon for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `http://HOST:PORT` of the daemon's metrics server.
    pub url: String,
    pub rule: Option<String>,
    pub bucket: Option<String>,
    pub sink: Option<String>,
    pub event: Option<String>,
    pub sample: Option<f64>,
    pub limit: Option<u64>,
    pub full: bool,
    /// Sent as `Authorization: Bearer TOKEN` (the daemon's `tap_token`).
    pub token: Option<String>,
}

impl Request {
    /// `HOST:PORT` and the `/tap?…` path of this request.
    fn target(&self) -> Result<(String, String), TapError> {
        let url = || TapError::Url(self.url.clone());
        let rest = self.url.strip_prefix("http://").ok_or_else(url)?;
        let host = rest.split('/').next().unwrap_or(rest);
        if host.is_empty() {
            return Err(url());
        }
        let enc = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let mut query = Vec::new();
        for (k, v) in [
            ("rule", &self.rule),
            ("bucket", &self.bucket),
            ("sink", &self.sink),
            ("event", &self.event),
        ] {
            if let Some(v) = v {
                query.push(format!("{k}={}", enc(v)));
            }
        }
        if let Some(s) = self.sample {
            query.push(format!("sample={s}"));
        }
        if let Some(l) = self.limit {
            query.push(format!("limit={l}"));
        }
        if self.full {
            query.push("full=1".into());
        }
        Ok((host.to_owned(), format!("/tap?{}", query.join("&"))))
    }
}

/// What one tap session saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub messages: u64,
    pub dropped: u64,
}

/// Streams until `limit` messages came, writing messages to `out` and drop
/// notices to `err`. The stream ending before that (the daemon stopped or
/// went away) is an error: a tap never ends silently.
pub fn run(req: &Request, out: &mut dyn Write, err: &mut dyn Write) -> Result<Seen, TapError> {
    let (host, path) = req.target()?;
    let io = |source| TapError::Io {
        host: host.clone(),
        cause: source,
    };
    let mut stream = TcpStream::connect(&host).map_err(|source| TapError::Connect {
        host: host.clone(),
        cause: source,
    })?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    // HTTP/1.0: the daemon ends the body by closing the connection, so
    // there are no chunks to decode.
    let auth = req
        .token
        .as_ref()
        .map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n").map_err(io)?;
    let mut r = BufReader::new(stream);
    let mut status = String::new();
    let closed = || TapError::Closed { host: host.clone() };
    if r.read_line(&mut status).map_err(io)? == 0 {
        return Err(closed());
    }
    loop {
        let mut h = String::new();
        match r.read_line(&mut h).map_err(io)? {
            0 => return Err(closed()),
            _ if h.trim_end().is_empty() => break,
            _ => {}
        }
    }
    if status.split_whitespace().nth(1) != Some("200") {
        let mut body = String::new();
        let _ = std::io::Read::read_to_string(&mut r, &mut body);
        return Err(TapError::Refused {
            host: host.clone(),
            answer: format!("{} {}", status.trim_end(), body.trim_end()),
        });
    }
    let mut seen = Seen::default();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(io)? == 0 {
            let _ = out.flush();
            return Err(TapError::Ended {
                host: host.clone(),
                messages: seen.messages,
            });
        }
        let v: serde_json::Value =
            serde_json::from_str(line.trim_end()).map_err(|source| TapError::NotJson {
                host: host.clone(),
                cause: source,
            })?;
        if let Some(n) = v.get("dropped").and_then(|n| n.as_u64()) {
            seen.dropped += n;
            let _ = writeln!(
                err,
                "tap: {n} messages dropped ({} in all): this tap reads slower than the daemon produces; the daemon did not wait",
                seen.dropped
            );
            continue;
        }
        seen.messages += 1;
        // The daemon's line as it came: it was checked to be JSON above.
        writeln!(out, "{}", line.trim_end()).map_err(TapError::Write)?;
        if req.limit.is_some_and(|l| seen.messages >= l) {
            break;
        }
    }
    let _ = out.flush();
    Ok(seen)
}
