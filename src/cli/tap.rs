//! `ossnotify tap`: a running daemon's messages, one JSON line each.

use std::io;
use std::process::ExitCode;

use super::args::TapArgs;
use super::{invalid, CliError, IntoCliError};

pub(super) fn tap(a: TapArgs) -> Result<ExitCode, CliError> {
    let token = match &a.token_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            invalid(format!(
                "--token-env {var}: the environment variable {var} is not set"
            ))
        })?),
        None => None,
    };
    let req = ossnotify::tap_client::Request {
        token,
        url: a.url,
        rule: a.rule,
        bucket: a.bucket,
        sink: a.sink,
        event: a.event,
        sample: a.sample,
        limit: a.limit,
        full: a.full,
    };
    let stdout = io::stdout();
    let mut out = io::LineWriter::new(stdout.lock());
    match ossnotify::tap_client::run(&req, &mut out, &mut io::stderr()) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // The daemon went away: a runtime failure, not a bad request.
        Err(e @ ossnotify::tap_client::TapError::Ended { .. }) => Err(e).runtime("tap"),
        Err(e) => Err(e).invalid("tap"),
    }
}
