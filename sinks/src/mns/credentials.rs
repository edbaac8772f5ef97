//! Where an MNS sink's credentials come from. Either fixed in the config
//! (an AccessKey, with an STS `security_token` if it is a temporary one),
//! or `credentials_file`: short-lived STS credentials in a file that a
//! sidecar rewrites before they expire (RRSA/OIDC tooling, a vault agent),
//! in the JSON shape of the ECS RAM-role metadata endpoint:
//!
//! ```json
//! {"AccessKeyId": "STS.…", "AccessKeySecret": "…", "SecurityToken": "…",
//!  "Expiration": "2026-11-27T18:00:00Z"}
//! ```
//!
//! The file is read again whenever it changes (checked at most once a
//! second) and, if it did not, when the credentials it holds are within
//! five minutes of their expiry; a file that cannot be read then keeps the
//! credentials already held (their requests fail with MNS's answer once
//! they expire, and are retried).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::config::Secret;

/// One set of credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub key_id: String,
    pub secret: Secret,
    /// STS credentials travel with their token (`security-token` header).
    pub token: Option<Secret>,
}

/// The source of a client's credentials.
#[derive(Debug, Clone)]
pub enum Source {
    Fixed(Arc<Credentials>),
    File(Arc<FileSource>),
}

impl Source {
    /// The credentials to sign the next request with.
    pub fn current(&self) -> Arc<Credentials> {
        match self {
            Source::Fixed(c) => c.clone(),
            Source::File(f) => f.current(),
        }
    }
}

#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    last_read: Mutex<LastRead>,
}

/// The credentials as last read from the file, and what decides when to
/// read it again.
#[derive(Debug)]
struct LastRead {
    credentials: Arc<Credentials>,
    modified: Option<SystemTime>,
    expires: Option<SystemTime>,
    checked: Instant,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FileFormat {
    access_key_id: String,
    access_key_secret: String,
    #[serde(default)]
    security_token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

/// Reads the credentials file: the credentials, the file's mtime, expiry.
fn read(path: &Path) -> Result<(Credentials, Option<SystemTime>, Option<SystemTime>), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read credentials_file {}: {e}", path.display()))?;
    // The error names the place, never the text (it holds secrets).
    let f: FileFormat = serde_json::from_str(&text).map_err(|e| {
        format!(
            "credentials_file {}: line {} column {}: not the expected JSON (AccessKeyId, AccessKeySecret, SecurityToken, Expiration)",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let expires = match &f.expiration {
        Some(t) => Some(
            httpdate::parse_http_date(t)
                .ok()
                .or_else(|| parse_rfc3339_utc(t))
                .ok_or_else(|| {
                    format!(
                        "credentials_file {}: Expiration is not a UTC time",
                        path.display()
                    )
                })?,
        ),
        None => None,
    };
    Ok((
        Credentials {
            key_id: f.access_key_id,
            secret: Secret::from(f.access_key_secret),
            token: f.security_token.map(Secret::from),
        },
        modified,
        expires,
    ))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what ECS and STS write).
fn parse_rfc3339_utc(t: &str) -> Option<SystemTime> {
    let b = t.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let secs = n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = days * 86_400 + secs;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(total).ok()?))
}

impl FileSource {
    /// Reads the file once: a file that cannot be read fails the start.
    pub fn open(path: &Path) -> Result<FileSource, String> {
        let (credentials, modified, expires) = read(path)?;
        Ok(FileSource {
            path: path.to_owned(),
            last_read: Mutex::new(LastRead {
                credentials: Arc::new(credentials),
                modified,
                expires,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Arc<Credentials> {
        let mut h = self.last_read.lock().unwrap_or_else(|p| p.into_inner());
        let expiring = h
            .expires
            .is_some_and(|e| e <= SystemTime::now() + Duration::from_secs(300));
        if h.checked.elapsed() < Duration::from_secs(1) && !expiring {
            return h.credentials.clone();
        }
        h.checked = Instant::now();
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified == h.modified && !expiring {
            return h.credentials.clone();
        }
        match read(&self.path) {
            Ok((c, modified, expires)) => {
                if c.key_id != h.credentials.key_id {
                    tracing::info!(file = %self.path.display(), "MNS credentials rotated");
                }
                *h = LastRead {
                    credentials: Arc::new(c),
                    modified,
                    expires,
                    checked: Instant::now(),
                };
            }
            Err(e) => tracing::warn!(error = %e, "keeping the MNS credentials held"),
        }
        h.credentials.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_times_parse() {
        assert_eq!(
            parse_rfc3339_utc("2026-11-27T18:00:00Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_802_400))
        );
        assert_eq!(parse_rfc3339_utc("2026-11-27 18:00:00"), None);
    }

    #[test]
    fn a_rewritten_file_is_read_again() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("creds.json");
        let write = |id: &str| {
            std::fs::write(
                &p,
                format!(r#"{{"AccessKeyId":"{id}","AccessKeySecret":"s-{id}","SecurityToken":"t-{id}","Expiration":"2099-01-01T00:00:00Z"}}"#),
            )
            .unwrap()
        };
        write("A");
        let f = FileSource::open(&p).unwrap();
        assert_eq!(f.current().key_id, "A");
        std::thread::sleep(Duration::from_millis(1100));
        write("B");
        let c = f.current();
        assert_eq!(
            (c.key_id.as_str(), c.token.as_ref().unwrap().expose()),
            ("B", "t-B")
        );
        std::fs::write(&p, "{not json").unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(f.current().key_id, "B", "a broken file keeps what is held");
        let err = FileSource::open(&p).unwrap_err();
        assert!(
            err.contains("line 1 column 2") && !err.contains("not json"),
            "{err}"
        );
    }
}
