//! The `ossnotify` command line: one module per command, each turning its
//! arguments into calls on the library and its results into output and an
//! exit code (docs/commands.md).

mod allocator;
pub mod args;
mod backfill;
mod backlog;
mod dead_letter;
mod dry_run;
mod error;
mod loadgen;
mod mns_dev;
mod plan;
mod run;
mod signals;
mod tap;
mod test;
mod validate;

use std::path::Path;
use std::process::ExitCode;

use ossnotify::config;

use args::{Cli, Command, DeadLetterArgs, DeadLetterCommand};
pub use error::CliError;
use error::{invalid, IntoCliError};

/// The exit codes of docs/commands.md.
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_RUNTIME: u8 = 2;
/// `plan`: the change would change what is sent.
const EXIT_CHANGES: u8 = 3;

/// Runs the command `cli` names.
pub fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Validate {
            config,
            no_environment,
            check_sinks,
        } => {
            let code = validate::validate(&config, no_environment)?;
            if check_sinks {
                return validate::check_sinks(&config);
            }
            Ok(code)
        }
        Command::Match {
            config,
            input,
            explain,
            format,
        } => dry_run::dry_run(&config, input.as_deref(), explain, format),
        Command::Plan {
            config,
            against,
            since,
            input,
            format,
        } => plan::plan(
            &config,
            &against,
            since.as_deref(),
            input.as_deref(),
            format,
        ),
        Command::Backfill(args) => backfill::run(args),
        Command::MnsDev(args) => mns_dev::mns_dev(args),
        Command::Loadgen(args) => loadgen::loadgen(args),
        Command::Replay { config } => {
            dead_letter::dead_letter(DeadLetterCommand::Replay(DeadLetterArgs {
                config,
                sink: None,
                rule: None,
                kind: None,
                since: None,
                until: None,
            }))
        }
        Command::DeadLetter(cmd) => dead_letter::dead_letter(cmd),
        Command::Backlog(cmd) => backlog::backlog(cmd),
        Command::Run {
            config,
            no_check_sinks,
        } => run::run(&config, !no_check_sinks),
        Command::Test {
            config,
            tests,
            format,
        } => test::config_tests(&config, &tests, format),
        Command::Tap(args) => tap::tap(args),
    }
}

/// The tokio runtime for the commands that do I/O.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .runtime("cannot start the runtime")
}

/// Loads a config for commands that run it: warnings to stderr, errors too
/// (each is already a located diagnostic).
pub(crate) fn load_for_run(path: &Path) -> Result<config::Config, CliError> {
    reported(config::load(path))
}

/// For commands that send nothing: the sinks' `${VAR}`s may be unset.
pub(crate) fn load_read_only(path: &Path) -> Result<config::Config, CliError> {
    reported(config::load_read_only(path))
}

/// The config, its warnings printed; or its errors printed.
fn reported(
    loaded: Result<config::Loaded, Vec<config::Diagnostic>>,
) -> Result<config::Config, CliError> {
    match loaded {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            let config = loaded.config;
            allocator::release_freed_memory();
            Ok(config)
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            Err(CliError::Reported)
        }
    }
}

/// The progress bar of the commands that read topics (`plan`, `backfill`).
pub(crate) fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} records {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
