//! `ossnotify backlog …`: what the sinks' backlogs hold.

use std::process::ExitCode;

use super::args::BacklogCommand;
use super::{invalid, load_read_only, CliError, IntoCliError};

pub(super) fn backlog(cmd: BacklogCommand) -> Result<ExitCode, CliError> {
    use ossnotify::backlog_admin as b;
    let (BacklogCommand::Ls(args) | BacklogCommand::Stats(args) | BacklogCommand::Show(args)) =
        &cmd;
    let config = load_read_only(&args.config)?;
    if let Some(s) = &args.sink {
        if !config.sinks.iter().any(|x| x.name == *s) {
            return Err(invalid(format!("--sink {s}: the config has no such sink")));
        }
    }
    let held = b::read_all(&config, args.sink.as_deref()).failed()?;
    print!(
        "{}",
        match cmd {
            BacklogCommand::Ls(_) => b::ls(&held),
            BacklogCommand::Stats(_) => b::stats(&held, ossnotify_sinks::store::now_ms()),
            BacklogCommand::Show(_) => b::show(&held),
        }
    );
    Ok(ExitCode::SUCCESS)
}
