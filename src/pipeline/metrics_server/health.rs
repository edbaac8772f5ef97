//! The answers of `/health` and `/ready`.

use hyper::StatusCode;

/// The answer of `/health` (or `/ready`, with `readiness`): a short JSON
/// body that names what is wrong, for a person at `curl` as much as for a
/// probe. Health is failed only when a component has failed (the run is
/// stopping, exit 2); readiness also waits for the source's partitions.
pub(super) fn health(
    readiness: bool,
    failure: Option<String>,
    assigned: bool,
) -> (StatusCode, serde_json::Value) {
    use serde_json::json;
    match failure {
        Some(f) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "failure": f}),
        ),
        None if !readiness => (StatusCode::OK, json!({"status": "ok"})),
        None if assigned => (StatusCode::OK, json!({"status": "ready"})),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "not ready",
                "not_ready": ["source: no partitions assigned yet (joining the consumer group, or no broker reachable: see ossnotify_source_connected and the log)"],
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_readiness_say_what_is_wrong() {
        let (s, b) = health(false, None, false);
        assert_eq!(
            (s, b.to_string()),
            (StatusCode::OK, r#"{"status":"ok"}"#.into())
        );
        let (s, b) = health(true, None, false);
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(b["not_ready"][0]
            .as_str()
            .unwrap()
            .starts_with("source: no partitions assigned"));
        let (s, b) = health(true, None, true);
        assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")));
        let (s, b) = health(false, Some("sink q: cannot write".into()), true);
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            b,
            serde_json::json!({"status": "failed", "failure": "sink q: cannot write"})
        );
    }
}
