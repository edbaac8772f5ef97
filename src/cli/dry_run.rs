//! `ossnotify match`: the messages a config would send for some records.

use std::io::{self, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use ossnotify::rules::RuleIndex;

use super::{load_read_only, CliError, IntoCliError};

pub(super) fn dry_run(
    config_path: &Path,
    input: Option<&Path>,
    explain: bool,
    format: ossnotify::dry_run::Format,
) -> Result<ExitCode, CliError> {
    let config = load_read_only(config_path)?;
    let index = RuleIndex::build(config.rules.clone(), config.region_policy());
    let (mut reader, name): (Box<dyn io::BufRead>, String) = match input {
        None => (Box::new(io::stdin().lock()), "<stdin>".into()),
        Some(p) if p == Path::new("-") => (Box::new(io::stdin().lock()), "<stdin>".into()),
        Some(p) => {
            let f = std::fs::File::open(p).invalid(format!("cannot read {}", p.display()))?;
            (
                Box::new(BufReader::with_capacity(1 << 16, f)),
                p.display().to_string(),
            )
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let stderr = io::stderr();
    let mut diag = stderr.lock();
    let ran = ossnotify::dry_run::run(
        &config,
        &index,
        &mut reader,
        &name,
        &mut out,
        &mut diag,
        ossnotify::dry_run::Options { explain, format },
    );
    match ran {
        Ok(s) => {
            let _ = writeln!(
                diag,
                "match: {} records: {} messages, {} without a matching rule, {} skipped, {} invalid",
                s.records, s.messages, s.unmatched, s.skipped, s.invalid
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).runtime(name),
    }
}
