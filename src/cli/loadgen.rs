//! `ossnotify loadgen`: operation logs into Kafka or a file.

use std::process::ExitCode;

use super::args::LoadgenArgs;
use super::{invalid, CliError, IntoCliError};

pub(super) fn loadgen(a: LoadgenArgs) -> Result<ExitCode, CliError> {
    use ossnotify::loadgen::{generate, LoadSpec, Target};
    let target = match (a.brokers, a.topic, a.file) {
        (Some(brokers), Some(topic), None) => Target::Kafka { brokers, topic },
        (None, None, Some(f)) => Target::File(f),
        _ => return Err(invalid("give either --brokers and --topic, or --file")),
    };
    let spec = LoadSpec {
        target,
        records: a.records,
        rate: a.rate,
        input: a.input,
        seed: a.seed,
    };
    let start = std::time::Instant::now();
    let n = generate(&spec).failed()?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "loadgen: {n} records in {secs:.2} s ({:.0}/s)",
        n as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
