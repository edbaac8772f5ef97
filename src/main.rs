//! The `ossnotify` command line: parses arguments and calls into the library.

use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ossnotify::config::{self, Severity};
use ossnotify::rules::RuleIndex;

#[derive(Parser)]
#[command(
    name = "ossnotify",
    version,
    about = "Object-storage operation logs in, OSS event notifications out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config and its rules; print errors and warnings (exit 0 valid, 1 invalid).
    Validate {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Dry run: print one line per message that would be sent for the records of INPUT.
    Match {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// NDJSON operation logs; standard input when absent or "-".
        input: Option<PathBuf>,
        /// Say on standard error why each record produced no message.
        #[arg(long)]
        explain: bool,
    },
}

/// SPEC §8's exit codes.
const EXIT_INVALID: u8 = 1;
const EXIT_RUNTIME: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Match {
            config,
            input,
            explain,
        } => dry_run(&config, input.as_deref(), explain),
    }
}

fn print_diagnostics(diags: &[config::Diagnostic]) {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for d in diags {
        let _ = writeln!(out, "{d}");
    }
}

fn validate(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            print_diagnostics(&loaded.warnings);
            println!(
                "{}: valid: {} rules, {} sinks, {} warnings",
                path.display(),
                loaded.config.rules.len(),
                loaded.config.sinks.len(),
                loaded.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            print_diagnostics(&diags);
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            println!("{}: invalid: {errors} errors", path.display());
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// Loads a config for commands that run it: warnings to stderr, errors too.
fn load_for_run(path: &Path) -> Result<config::Config, ExitCode> {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(loaded.config)
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

fn dry_run(config_path: &Path, input: Option<&Path>, explain: bool) -> ExitCode {
    let config = match load_for_run(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let index = RuleIndex::build(config.rules.clone(), config.region_policy());
    let (mut reader, name): (Box<dyn io::BufRead>, String) = match input {
        None => (Box::new(io::stdin().lock()), "<stdin>".into()),
        Some(p) if p == Path::new("-") => (Box::new(io::stdin().lock()), "<stdin>".into()),
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => (
                Box::new(BufReader::with_capacity(1 << 16, f)),
                p.display().to_string(),
            ),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return ExitCode::from(EXIT_INVALID);
            }
        },
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let stderr = io::stderr();
    let mut diag = stderr.lock();
    match ossnotify::dry_run::run(
        &config,
        &index,
        &mut reader,
        &name,
        &mut out,
        &mut diag,
        explain,
    ) {
        Ok(s) => {
            let _ = writeln!(
                diag,
                "match: {} records: {} messages, {} without a matching rule, {} skipped, {} invalid",
                s.records, s.messages, s.unmatched, s.skipped, s.invalid
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(diag, "error: {name}: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
