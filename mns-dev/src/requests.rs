//! One request: its target, its body, the messages it carries and the
//! reply, as MNS gives them.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use ossnotify_sinks::mns::sign::{self};
use ossnotify_sinks::mns::xml::{self, BatchEntry};
use ossnotify_sinks::mns::MAX_BYTES;

use super::auth::authenticate;
use super::{Accepted, DevConfig, State};

pub(crate) type Reply = Response<Full<Bytes>>;

/// Why a connection is closed without an answer (the drop fault).
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (--drop-rate)")
    }
}

impl std::error::Error for Dropped {}

fn reply(status: StatusCode, body: String) -> Reply {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/xml;charset=utf-8")
        .header("x-mns-request-id", "00000000000000000000DEV0")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    reply(
        status,
        xml::error_response(code, message, "00000000000000000000DEV0", "mns-dev"),
    )
}

pub(crate) async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Reply, Dropped> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let cfg = &st.cfg;
    if !cfg.latency.is_zero() {
        tokio::time::sleep(cfg.latency).await;
    }
    if cfg.drop_rate > 0.0 && fastrand::f64() < cfg.drop_rate {
        return Err(Dropped);
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, cfg.idle_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "request body over 1 MiB",
            ))
        }
        // A stalled or broken body: close the connection.
        Err(BodyError::Stalled) => return Err(Dropped),
    };
    if st.started.elapsed() < cfg.fail_first {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "mns-dev: --fail-first-seconds",
        ));
    }
    if cfg.throttle_rate > 0.0 && fastrand::f64() < cfg.throttle_rate {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "QpsLimitExceeded",
            "mns-dev: --throttle-rate",
        ));
    }
    let credentials = st.credentials.lock().expect("not poisoned").clone();
    if let Err(r) = authenticate(&credentials, &parts, &body) {
        return Ok(*r);
    }
    if parts.method == hyper::Method::GET {
        return Ok(attributes(cfg, &parts));
    }
    let (kind, name) = match target(cfg, &parts) {
        Ok(t) => t,
        Err(r) => return Ok(*r),
    };
    let (messages, batch) = match messages_of(kind, &body) {
        Ok(m) => m,
        Err(r) => return Ok(*r),
    };
    Ok(accept_all(&st, kind, name, &messages, batch))
}

/// GetQueueAttributes (`GET /queues/Q`) and GetTopicAttributes (`GET
/// /topics/T`): the attributes MNS gives (those a dev endpoint has), or
/// its `QueueNotExist` / `TopicNotExist`.
fn attributes(cfg: &DevConfig, parts: &hyper::http::request::Parts) -> Reply {
    const NS: &str = "http://mns.aliyuncs.com/doc/v1/";
    let path = parts.uri.path();
    match path.trim_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["queues", name] if cfg.queues.iter().any(|q| q == name) => reply(
            StatusCode::OK,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Queue xmlns="{NS}"><QueueName>{}</QueueName><DelaySeconds>0</DelaySeconds><MaximumMessageSize>65536</MaximumMessageSize><MessageRetentionPeriod>345600</MessageRetentionPeriod><VisibilityTimeout>30</VisibilityTimeout><PollingWaitSeconds>0</PollingWaitSeconds></Queue>"#,
                xml::escape(name)
            ),
        ),
        ["topics", name] if cfg.topics.iter().any(|t| t == name) => reply(
            StatusCode::OK,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Topic xmlns="{NS}"><TopicName>{}</TopicName><MaximumMessageSize>65536</MaximumMessageSize><LoggingEnabled>False</LoggingEnabled></Topic>"#,
                xml::escape(name)
            ),
        ),
        ["queues", _] => error(
            StatusCode::NOT_FOUND,
            "QueueNotExist",
            "The queue name you provided is not exist.",
        ),
        ["topics", _] => error(
            StatusCode::NOT_FOUND,
            "TopicNotExist",
            "The topic you provided is not exist.",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "InvalidArgument",
            "mns-dev implements GET /queues/{q} and GET /topics/{t}",
        ),
    }
}

/// Which topic or queue a request is for (`kind` is `topic` or `queue`),
/// or MNS's answer when it is none that exists.
fn target<'p>(
    cfg: &DevConfig,
    parts: &'p hyper::http::request::Parts,
) -> Result<(&'static str, &'p str), Box<Reply>> {
    let path = parts.uri.path();
    let (kind, name) = match path.trim_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["topics", name, "messages"] => ("topic", name),
        ["queues", name, "messages"] => ("queue", name),
        _ => {
            return Err(Box::new(error(
                StatusCode::NOT_FOUND,
                "InvalidArgument",
                "mns-dev implements POST /topics/{t}/messages and POST /queues/{q}/messages",
            )))
        }
    };
    if parts.method != hyper::Method::POST {
        return Err(Box::new(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidArgument",
            "only POST is implemented",
        )));
    }
    let known = match kind {
        "topic" => cfg.topics.iter().any(|t| t == name),
        _ => cfg.queues.iter().any(|q| q == name),
    };
    if !known {
        return Err(Box::new(match kind {
            "topic" => error(
                StatusCode::NOT_FOUND,
                "TopicNotExist",
                "The topic you provided is not exist.",
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "QueueNotExist",
                "The queue name you provided is not exist.",
            ),
        }));
    }
    Ok((kind, name))
}

/// The messages of a request body, and whether it was a batch; or MNS's
/// answer to a malformed one.
fn messages_of(kind: &str, body: &[u8]) -> Result<(Vec<xml::OutMessage>, bool), Box<Reply>> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "body is not UTF-8",
        )));
    };
    let messages = match xml::parse_request(text) {
        Ok(m) if !m.is_empty() => m,
        Ok(_) => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "MalformedXML",
                "no Message",
            )))
        }
        Err(e) => return Err(Box::new(error(StatusCode::BAD_REQUEST, "MalformedXML", &e))),
    };
    let batch = text.contains("<Messages");
    if kind == "topic" && (batch || messages.len() != 1) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "PublishMessage takes one Message",
        )));
    }
    if messages.len() > 16 {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "a batch holds at most 16 messages",
        )));
    }
    if let Some(m) = messages.iter().find(|m| m.body.len() > MAX_BYTES) {
        let why = format!(
            "message body is {} bytes; the limit is {}",
            m.body.len(),
            MAX_BYTES
        );
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            &why,
        )));
    }
    Ok((messages, batch))
}

/// Accepts the messages (but those `--fail-rate` fails) and answers as
/// MNS does: one message's id, or a batch's entries.
fn accept_all(
    st: &Arc<State>,
    kind: &'static str,
    name: &str,
    messages: &[xml::OutMessage],
    batch: bool,
) -> Reply {
    let cfg = &st.cfg;
    if !batch {
        if cfg.fail_rate > 0.0 && fastrand::f64() < cfg.fail_rate {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "mns-dev: --fail-rate",
            );
        }
        let m = &messages[0];
        let id = accept(st, kind, name, m);
        return reply(
            StatusCode::CREATED,
            xml::sent_response(&id, &sign::md5_hex(m.body.as_bytes()).to_uppercase()),
        );
    }
    let mut any_failed = false;
    let entries: Vec<BatchEntry> = messages
        .iter()
        .map(|m| {
            if cfg.fail_rate > 0.0 && fastrand::f64() < cfg.fail_rate {
                any_failed = true;
                BatchEntry::Failed {
                    code: "InternalError".into(),
                    message: "mns-dev: --fail-rate".into(),
                }
            } else {
                BatchEntry::Sent {
                    message_id: accept(st, kind, name, m),
                    body_md5: sign::md5_hex(m.body.as_bytes()).to_uppercase(),
                }
            }
        })
        .collect();
    // MNS answers a partly failed batch with 500 and the per-entry results.
    let status = if any_failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::CREATED
    };
    reply(status, xml::batch_response(&entries))
}

enum BodyError {
    TooLarge,
    Stalled,
}

/// The request body, at most 1 MiB, with at most `idle` between its frames.
async fn read_body(body: Incoming, idle: Duration) -> Result<Bytes, BodyError> {
    let mut body = Limited::new(body, 1 << 20);
    let mut out = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(BodyError::TooLarge)
            }
            Ok(Some(Err(_))) => return Err(BodyError::Stalled),
        }
    }
}

fn accept(st: &State, kind: &'static str, name: &str, m: &xml::OutMessage) -> String {
    let id = format!("{:016X}", st.next_id.fetch_add(1, Ordering::Relaxed));
    let a = Accepted {
        kind,
        name: name.to_owned(),
        message_id: id.clone(),
        body: m.body.clone(),
        tag: m.tag.clone(),
        received: std::time::SystemTime::now(),
    };
    if let Some(file) = &st.record {
        let line = serde_json::json!({
            "kind": a.kind, "name": a.name, "message_id": a.message_id, "body": a.body, "tag": a.tag,
            "received_ms": a.received.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        });
        // One write of the whole line: a process stopped between two
        // small writes would leave a torn line that the next one appends to.
        let mut text = line.to_string();
        text.push('\n');
        let mut f = file.lock().expect("not poisoned");
        // A recording failure must not fail the request: MNS accepted it.
        let _ = f.write_all(text.as_bytes());
    }
    let mut w = st.window.lock().expect("not poisoned");
    w.push(a, st.cfg.keep, st.cfg.keep_bytes);
    id
}
