//! `ossnotify test`: a config's unit tests.

use std::path::Path;
use std::process::ExitCode;

use super::args::TestFormat;
use super::{load_read_only, CliError, IntoCliError};

pub(super) fn config_tests(
    config_path: &Path,
    tests: &Path,
    format: TestFormat,
) -> Result<ExitCode, CliError> {
    let config = load_read_only(config_path)?;
    let text =
        std::fs::read_to_string(tests).invalid(format!("cannot read {}", tests.display()))?;
    let r = ossnotify::expectations::run(&config, tests, &text)
        .map_err(|e| CliError::Invalid(anyhow::Error::new(e)))?;
    match format {
        TestFormat::Text => {
            print!("{}", r.text);
            println!("test: {} passed, {} failed", r.passed, r.failed);
        }
        TestFormat::Junit => {
            print!("{}", r.junit(&tests.display().to_string()));
            eprintln!("test: {} passed, {} failed", r.passed, r.failed);
        }
    }
    if r.failed == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::Reported)
    }
}
