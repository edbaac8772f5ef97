//! `ossnotify validate [--no-environment | --check-sinks]`.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use ossnotify::config::{self, Severity};

use super::{invalid, load_for_run, runtime, CliError};

fn print_diagnostics(diags: &[config::Diagnostic]) {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for d in diags {
        let _ = writeln!(out, "{d}");
    }
}

pub(super) fn validate(path: &Path, no_environment: bool) -> Result<ExitCode, CliError> {
    let loaded = if no_environment {
        match config::load_structure(path) {
            Ok(warnings) => {
                print_diagnostics(&warnings);
                println!(
                    "{}: valid (structure only; values from the environment not checked): {} warnings",
                    path.display(),
                    warnings.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(diags) => Err(diags),
        }
    } else {
        config::load(path)
    };
    match loaded {
        Ok(loaded) => {
            print_diagnostics(&loaded.warnings);
            for t in ossnotify::pipeline::store_topics(&loaded.config) {
                println!("note: {t}; `run` creates it if the cluster lacks it");
            }
            println!(
                "{}: valid: {} rules, {} sinks, {} warnings",
                path.display(),
                loaded.config.rules.len(),
                loaded.config.sinks.len(),
                loaded.warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            print_diagnostics(&diags);
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            let plural = if errors == 1 { "" } else { "s" };
            println!("{}: invalid: {errors} error{plural}", path.display());
            Err(CliError::Reported)
        }
    }
}

/// `validate --check-sinks`: builds every sink and probes its destination;
/// one line per sink; exit 1 if any answers for good.
pub(super) fn check_sinks(path: &Path) -> Result<ExitCode, CliError> {
    let config = load_for_run(path)?;
    let rt = runtime()?;
    let mut sinks = Vec::new();
    for s in &config.sinks {
        let _guard = rt.enter();
        let sink = s
            .config
            .build(&s.name)
            .map_err(|e| invalid(format!("sink {}: {e}", s.name)))?;
        sinks.push((s.name.clone(), std::sync::Arc::from(sink)));
    }
    let answers = rt.block_on(ossnotify::pipeline::probe_all(&sinks));
    let mut refused = 0;
    for (name, answer) in answers {
        match answer {
            Ok(()) => println!("sink {name}: ok"),
            Err(f) if f.permanent => {
                refused += 1;
                println!("sink {name}: refused: {}", f.answer);
            }
            Err(f) => println!(
                "sink {name}: no answer (a warning; run starts anyway): {}",
                f.answer
            ),
        }
    }
    if refused > 0 {
        println!("{}: {refused} sinks refused", path.display());
        return Err(CliError::Reported);
    }
    Ok(ExitCode::SUCCESS)
}
