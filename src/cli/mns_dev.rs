//! `ossnotify mns-dev`: the local MNS endpoint, until SIGTERM or SIGINT.

use std::process::ExitCode;

use super::args::MnsDevArgs;
use super::{invalid, runtime, CliError, IntoCliError};

/// SIGINT or SIGTERM.
async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub(super) fn mns_dev(a: MnsDevArgs) -> Result<ExitCode, CliError> {
    use ossnotify_mns_dev::{DevConfig, DevServer};
    for (flag, v) in [
        ("--fail-rate", a.fail_rate),
        ("--throttle-rate", a.throttle_rate),
        ("--drop-rate", a.drop_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(format!("{flag} must be between 0 and 1, not {v}")));
        }
    }
    let nonempty = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let cfg = DevConfig {
        access_key_id: a.access_key_id,
        access_key_secret: a.access_key_secret,
        security_token: a.security_token,
        topics: nonempty(a.topics),
        queues: nonempty(a.queues),
        record: a.record,
        fail_rate: a.fail_rate,
        fail_first: std::time::Duration::from_secs(a.fail_first_seconds),
        throttle_rate: a.throttle_rate,
        latency: std::time::Duration::from_millis(a.latency_ms),
        drop_rate: a.drop_rate,
        keep: a.keep,
        keep_bytes: a.keep_mib.saturating_mul(1 << 20),
        header_timeout: std::time::Duration::from_secs(a.header_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(a.idle_timeout_secs),
        max_connections: a.max_connections,
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(ossnotify_mns_dev::tls_config(cert, key).map_err(invalid)?),
        _ => None,
    };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .runtime(format!("cannot listen on {}", a.listen))?;
        let topics = cfg.topics.join(",");
        let queues = cfg.queues.join(",");
        let server = match tls {
            Some(tls) => DevServer::start_tls(cfg, listener, tls),
            None => DevServer::start(cfg, listener),
        }
        .runtime("cannot open the record file")?;
        // Tests and scripts wait for this line.
        println!(
            "mns-dev listening on {} (topics: {topics}; queues: {queues})",
            server.endpoint()
        );
        wait_for_stop().await;
        eprintln!(
            "mns-dev: {} requests, {} messages accepted",
            server.requests(),
            server.accepted_count()
        );
        Ok(ExitCode::SUCCESS)
    })
}
