//! `ossnotify dead-letter …` and `replay`: the dead-letter store's commands.

use std::process::ExitCode;

use super::args::DeadLetterCommand;
use super::{invalid, load_for_run, load_read_only, runtime, CliError, IntoCliError, EXIT_RUNTIME};

pub(super) fn dead_letter(cmd: DeadLetterCommand) -> Result<ExitCode, CliError> {
    use ossnotify::dead_letter_admin::{self as dl, Filter};
    let (args, all) = match &cmd {
        DeadLetterCommand::Ls(a)
        | DeadLetterCommand::Stats(a)
        | DeadLetterCommand::Show(a)
        | DeadLetterCommand::Replay(a) => (a, false),
        DeadLetterCommand::Purge { args, all } => (args, *all),
    };
    let time = |flag: &'static str, t: &Option<String>| {
        t.as_deref().map(dl::parse_time).transpose().invalid(flag)
    };
    let filter = Filter {
        sink: args.sink.clone(),
        rule: args.rule.clone(),
        kind: args.kind,
        since_ms: time("--since", &args.since)?,
        until_ms: time("--until", &args.until)?,
    };
    // Listing sends nothing: the sinks' secrets may be unset for it.
    let config = match cmd {
        DeadLetterCommand::Ls(_) | DeadLetterCommand::Stats(_) | DeadLetterCommand::Show(_) => {
            load_read_only(&args.config)?
        }
        _ => load_for_run(&args.config)?,
    };
    let place = dl::Place::of(&config).failed()?;
    let listed = || dl::select(&place, &filter).failed();
    match cmd {
        DeadLetterCommand::Ls(_) => {
            let (e, bad) = listed()?;
            print!("{}", dl::ls(&e, &bad));
        }
        DeadLetterCommand::Stats(_) => {
            let (e, bad) = listed()?;
            print!("{}", dl::stats(&e, &bad, ossnotify_sinks::store::now_ms()));
        }
        DeadLetterCommand::Show(_) => print!("{}", dl::show(&listed()?.0)),
        DeadLetterCommand::Purge { .. } if filter.is_empty() && !all => {
            return Err(invalid(
                "purge takes a filter (--sink, --rule, --kind, --since, --until), or --all",
            ));
        }
        DeadLetterCommand::Purge { .. } => {
            let n = dl::purge(&place, &filter).failed()?;
            println!("purge: {n} entries taken out");
        }
        DeadLetterCommand::Replay(_) => {
            let r = runtime()?
                .block_on(dl::replay(&config, &place, &filter))
                .failed()?;
            println!(
                "replay: {} delivered, {} still failing (kept), {} not replayable (kept)",
                r.delivered, r.still_failing, r.kept
            );
            if r.still_failing > 0 {
                return Ok(ExitCode::from(EXIT_RUNTIME));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
