//! The `ossnotify` binary: parses the command line, runs the command (see
//! [`cli`]) and turns its result into the exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{CliError, EXIT_INVALID, EXIT_RUNTIME};

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    // Logs on stderr; RUST_LOG overrides the level (default: info).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(CliError::Reported) => ExitCode::from(EXIT_INVALID),
        Err(e @ CliError::Invalid(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(e @ CliError::Runtime(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
