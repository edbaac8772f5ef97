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
        /// Check the structure without the environment: an unset ${NAME} is
        /// no error, and values that use one are not checked (for CI).
        #[arg(long)]
        no_environment: bool,
        /// Also probe every sink's destination as `run` does at start (exit 1 naming each that refuses).
        #[arg(long, conflicts_with = "no_environment")]
        check_sinks: bool,
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
        /// How each message is printed.
        #[arg(long, value_enum, default_value = "oss")]
        format: ossnotify::dry_run::Format,
    },
    /// What a rule change would do to real traffic: both configs over the same records (the source's topics since a time, or a file), and the messages that would start, stop or change per rule and sink; exit 3 when something changes.
    Plan {
        /// The config to plan (NEW).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The config running now (OLD).
        #[arg(long, value_name = "FILE")]
        against: PathBuf,
        /// Read NEW's source topics: the records whose operation time is at most this old (30m, 2h, 7d), or since an RFC 3339 time or epoch ms.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// NDJSON operation logs instead of the topics ("-": standard input).
        input: Option<PathBuf>,
        /// `text` (default) or `json`.
        #[arg(long, value_enum, default_value = "text")]
        format: ossnotify::plan::Format,
    },
    /// Sends the named rules' notifications for past records of the source's topics (operation time from --since), up to where the live group had read when the backfill started; resumes where it stopped.
    Backfill {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// A rule whose notifications to send (repeat for more).
        #[arg(long = "rule", value_name = "ID", required = true)]
        rules: Vec<String>,
        /// The earliest operation time: an age (30m, 2h, 7d), RFC 3339 or epoch ms.
        #[arg(long, value_name = "TIME")]
        since: String,
        /// Only operations before this time (same forms); the window always ends where the live group had read.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Records per second at most.
        #[arg(long, value_name = "N")]
        max_rate: Option<f64>,
        /// Names the backfill (its group is {group_id}.backfill.NAME); the rules' ids joined by "+" by default.
        #[arg(long)]
        name: Option<String>,
        /// Start again from --since, forgetting a stopped backfill of this name.
        #[arg(long)]
        restart: bool,
        /// Serve /metrics here while it runs.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
    },
    /// Config unit tests: records and the notifications each must (or must not) produce; exit 1 with a diff when one fails.
    Test {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The tests file (TOML: [[tests]] with name, record and expect; docs/config-tests.md).
        tests: PathBuf,
        /// `text` (default), or `junit`: JUnit XML on standard output, for CI systems.
        #[arg(long, value_name = "FORMAT", default_value = "text")]
        format: TestFormat,
    },
    /// Run the pipeline. With a file or stdin source it exits 0 once the input has ended and every message is delivered or dead-lettered.
    Run {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Start without probing the sinks' destinations (a queue that does not exist yet).
        #[arg(long)]
        no_check_sinks: bool,
    },
    /// Show the messages a running daemon produces (from its [metrics] listen address), one JSON line each: rule, sinks, event, bucket, key (and the notification with --full).
    Tap(TapArgs),
    /// Re-send the dead-letter store through the config's sinks; delivered entries are removed (`dead-letter replay` without filters).
    Replay {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Inspect, replay or purge the dead-letter store; safe while the daemon runs.
    #[command(subcommand)]
    DeadLetter(DeadLetterCommand),
    /// What each sink's backlog holds (either store), read beside the running daemon.
    #[command(subcommand)]
    Backlog(BacklogCommand),
    /// Write operation logs (synthetic, or an input file's lines) to Kafka or a file, with a progress bar.
    Loadgen(LoadgenArgs),
    /// A local MNS-compatible endpoint (PublishMessage, SendMessage, BatchSendMessage) for demos and tests.
    MnsDev(MnsDevArgs),
}

#[derive(clap::Subcommand)]
enum DeadLetterCommand {
    /// One line per entry, under a header: id, time, kind, sink, rule, key, attempts, error.
    Ls(DeadLetterArgs),
    /// Counts by sink, rule, kind, error code and age.
    Stats(DeadLetterArgs),
    /// Entries as JSON, payloads decoded.
    Show(DeadLetterArgs),
    /// Send entries again through the config's sinks; delivered ones are taken out. Exit 2 if some still fail.
    Replay(DeadLetterArgs),
    /// Take entries out for good (all of them only with --all).
    Purge {
        #[command(flatten)]
        args: DeadLetterArgs,
        /// Purge every entry (required when no filter is given).
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Subcommand)]
enum BacklogCommand {
    /// One line per message: sink, id, write time, rule, key, bytes.
    Ls(BacklogArgs),
    /// Per sink: messages, bytes, the oldest's age, and where.
    Stats(BacklogArgs),
    /// Messages as JSON, payloads decoded.
    Show(BacklogArgs),
}

#[derive(clap::Args)]
struct BacklogArgs {
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Only this sink's backlog.
    #[arg(long)]
    sink: Option<String>,
}

#[derive(clap::Args)]
struct DeadLetterArgs {
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Only entries of this sink.
    #[arg(long)]
    sink: Option<String>,
    /// Only entries of this rule.
    #[arg(long)]
    rule: Option<String>,
    /// Only entries of this kind: delivery or invalid_record.
    #[arg(long)]
    kind: Option<ossnotify_sinks::DeadLetterKind>,
    /// Only entries written at or after this time: an age (30m, 2h, 7d), RFC 3339 or epoch ms.
    #[arg(long)]
    since: Option<String>,
    /// Only entries written before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
}

#[derive(clap::Args)]
struct TapArgs {
    /// The daemon's metrics server.
    #[arg(long, default_value = "http://127.0.0.1:9898")]
    url: String,
    /// Only messages of this rule.
    #[arg(long)]
    rule: Option<String>,
    /// Only messages about this bucket.
    #[arg(long)]
    bucket: Option<String>,
    /// Only messages going to this sink.
    #[arg(long)]
    sink: Option<String>,
    /// Only this event (ObjectCreated:PutObject), or a prefix ending in * (ObjectCreated:*).
    #[arg(long)]
    event: Option<String>,
    /// Keep this share of the matching messages, in (0, 1].
    #[arg(long)]
    sample: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    limit: Option<u64>,
    /// Also print each notification's JSON.
    #[arg(long)]
    full: bool,
    /// The environment variable holding the daemon's [metrics] tap_token (sent as a bearer token).
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
}

#[derive(clap::Args)]
struct LoadgenArgs {
    /// Kafka brokers (host:port,…); with --topic.
    #[arg(long, requires = "topic")]
    brokers: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    /// Write NDJSON to this file instead of Kafka.
    #[arg(long, conflicts_with = "brokers")]
    file: Option<PathBuf>,
    /// Records to write.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Records per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Cycle through this file's lines instead of generating records.
    #[arg(long)]
    input: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(clap::Args)]
struct MnsDevArgs {
    /// Address to listen on, e.g. 127.0.0.1:9900.
    #[arg(long, default_value = "127.0.0.1:9900")]
    listen: String,
    #[arg(long)]
    access_key_id: String,
    #[arg(long)]
    access_key_secret: String,
    /// Require this STS security token (the `security-token` header) with the key.
    #[arg(long)]
    security_token: Option<String>,
    /// Topics that exist, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "")]
    topics: Vec<String>,
    /// Queues that exist, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "")]
    queues: Vec<String>,
    /// Append every accepted message to this file, one JSON object per line.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Share (0..1) of requests answered 503 (of batch entries: failed with InternalError).
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Answer 503 to everything for this many seconds after start.
    #[arg(long, default_value_t = 0)]
    fail_first_seconds: u64,
    /// Share (0..1) of requests answered QpsLimitExceeded.
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Milliseconds added to every answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share (0..1) of requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Newest accepted messages kept in memory (counts and --record cover all).
    #[arg(long, default_value_t = 10_000)]
    keep: usize,
    /// At most this many MiB of kept message bodies.
    #[arg(long, default_value_t = 64)]
    keep_mib: usize,
    /// Seconds a client has to send a request's headers; also closes idle
    /// keep-alive connections.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Longest silence, in seconds, while a request body arrives.
    #[arg(long, default_value_t = 30)]
    idle_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The exit codes of docs/commands.md.
const EXIT_INVALID: u8 = 1;
const EXIT_RUNTIME: u8 = 2;

/// Threads free what other threads allocated all the time here (batches,
/// envelopes, librdkafka's buffers); mimalloc handles that without glibc's
/// per-arena lock contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc commits its arena eagerly on Linux by default: every page it
/// ever handed out stays resident. Without that, peak RSS fell from 67–85
/// to about 17 MiB on a file → null job and from 187–193 to 101–104 MiB in
/// `mns_pipeline`, at the same speed (BENCHMARKS.md, session 11). The
/// option must be set before the first allocation, which happens before
/// `main`, so it is set from the ELF initialisers.
/// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins. (A short
/// purge delay saved a little more memory and cost 6 % of `mns_pipeline`'s
/// throughput; see [`release_freed_memory`] instead.)
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

/// `mi_option_arena_eager_commit` in mimalloc v3's `mimalloc.h` (the sys
/// crate's constants predate it).
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

#[cfg(target_os = "linux")]
extern "C" fn tune_allocator() {
    // SAFETY: `getenv` reads the environment, which nothing writes this
    // early (initialisers run on the one thread before `main`); the name
    // is a NUL-terminated literal. `mi_option_set` stores one integer in
    // mimalloc's option table and is valid at any time.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

/// Returns to the OS what loading the config freed (called by [`reported`],
/// which every command's config load goes through). mimalloc returns freed
/// pages only when the freeing thread allocates again, and the main thread
/// then waits for the daemon (or backfill) to stop: a 10k-rule config left
/// about 47 MiB resident for the process's life.
fn release_freed_memory() {
    // SAFETY: `mi_collect` frees this thread's empty pages and purges what
    // the arenas hold freed; it touches no live allocation.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Why a command failed, and so its exit code. Every error the user sees
/// is printed in one place, [`main`], as `error: ` and its context chain.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// Exit 1: a config, input or argument to fix.
    #[error("{0:#}")]
    Invalid(anyhow::Error),
    /// Exit 2: it failed while running.
    #[error("{0:#}")]
    Runtime(anyhow::Error),
    /// Exit 1, already reported (config diagnostics, a test's diff).
    #[error("already reported")]
    Reported,
}

/// `.invalid("context")?` and `.runtime("context")?` on any error (exit 1
/// and 2), `.failed()?` for exit 2 when the error says it all.
trait IntoCliError<T> {
    fn failed(self) -> Result<T, CliError>;
    fn invalid(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError>;
    fn runtime(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError>;
}

impl<T, E: std::fmt::Display> IntoCliError<T> for Result<T, E> {
    fn failed(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::Runtime(flat(e)))
    }
    fn invalid(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError> {
        self.map_err(|e| CliError::Invalid(flat(e).context(context)))
    }
    fn runtime(
        self,
        context: impl std::fmt::Display + Send + Sync + 'static,
    ) -> Result<T, CliError> {
        self.map_err(|e| CliError::Runtime(flat(e).context(context)))
    }
}

/// `e` as its message alone. The library's errors name their cause in
/// their message (a file and its `io::Error`); kept as a source too, the
/// chain printed in `main` would say the cause twice.
fn flat(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::msg(e.to_string())
}

fn invalid(message: impl std::fmt::Display + Send + Sync + 'static) -> CliError {
    CliError::Invalid(anyhow::anyhow!("{message}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs on stderr; RUST_LOG overrides the level (default: info).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match try_main(cli) {
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

fn try_main(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Validate {
            config,
            no_environment,
            check_sinks,
        } => {
            let code = validate(&config, no_environment)?;
            if check_sinks {
                return check_sinks_of(&config);
            }
            Ok(code)
        }
        Command::Match {
            config,
            input,
            explain,
            format,
        } => dry_run(&config, input.as_deref(), explain, format),
        Command::Plan {
            config,
            against,
            since,
            input,
            format,
        } => plan(
            &config,
            &against,
            since.as_deref(),
            input.as_deref(),
            format,
        ),
        Command::Backfill {
            config,
            rules,
            since,
            until,
            max_rate,
            name,
            restart,
            metrics_listen,
        } => {
            let time = |flag: &'static str, t: &str| {
                ossnotify::dead_letter::parse_time(t)
                    .map(|t| t as i64)
                    .invalid(flag)
            };
            let req = ossnotify::backfill::Request {
                rules,
                since_ms: time("--since", &since)?,
                until_ms: until.as_deref().map(|u| time("--until", u)).transpose()?,
                max_rate,
                name,
                restart,
                metrics_listen,
            };
            backfill(&config, &req)
        }
        Command::MnsDev(args) => mns_dev(args),
        Command::Loadgen(args) => loadgen(args),
        Command::Replay { config } => dead_letter(DeadLetterCommand::Replay(DeadLetterArgs {
            config,
            sink: None,
            rule: None,
            kind: None,
            since: None,
            until: None,
        })),
        Command::DeadLetter(cmd) => dead_letter(cmd),
        Command::Backlog(cmd) => backlog(cmd),
        Command::Run {
            config,
            no_check_sinks,
        } => run(&config, !no_check_sinks),
        Command::Test {
            config,
            tests,
            format,
        } => config_tests(&config, &tests, format),
        Command::Tap(args) => tap(args),
    }
}

fn tap(a: TapArgs) -> Result<ExitCode, CliError> {
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

/// `validate --check-sinks`: builds every sink and probes its destination;
/// one line per sink; exit 1 if any answers for good.
fn check_sinks_of(path: &Path) -> Result<ExitCode, CliError> {
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

fn run(config_path: &Path, check_sinks: bool) -> Result<ExitCode, CliError> {
    use ossnotify::config::SourceType;
    use ossnotify::pipeline::Input;
    let config = load_for_run(config_path)?;
    let input = match config.source.kind {
        SourceType::Stdin => Input::Lines(
            BufReader::new(Box::new(io::stdin()) as Box<dyn io::Read + Send>),
            "<stdin>".into(),
        ),
        SourceType::File => {
            let path = config.source.path.clone().unwrap_or_default();
            let f =
                std::fs::File::open(&path).invalid(format!("cannot read {}", path.display()))?;
            Input::Lines(
                BufReader::with_capacity(1 << 16, Box::new(f) as Box<dyn io::Read + Send>),
                path.display().to_string(),
            )
        }
        SourceType::Kafka => Input::Kafka,
    };
    let stop = stop_on_signals();
    let options = ossnotify::pipeline::RunOptions {
        check_sinks,
        ..Default::default()
    };
    let s = match ossnotify::pipeline::run_with(&config, input, stop, options) {
        Ok(s) => s,
        Err(e) => return Err(run_failed(e)),
    };
    if !s.drained {
        eprintln!("run: the drain deadline cut the drain short; what was in flight is read again at the next start");
    }
    eprintln!(
        "run: {} records ({} invalid, {} skipped, {} without a matching rule); {} messages: {} delivered ({} of them from a backlog), {} dead-lettered",
        s.records,
        s.invalid,
        s.skipped,
        s.unmatched,
        s.messages,
        s.delivered,
        s.redelivered,
        s.dead_lettered
    );
    if s.backlogged > 0 || s.still_backlogged > 0 {
        eprintln!(
            "run: {} kept in sink backlogs while their sinks failed; {} still there, sent again by the next run",
            s.backlogged, s.still_backlogged
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn loadgen(a: LoadgenArgs) -> Result<ExitCode, CliError> {
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

/// The tokio runtime for the commands that do I/O.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .runtime("cannot start the runtime")
}

/// How `ossnotify test` reports.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TestFormat {
    Text,
    Junit,
}

fn config_tests(
    config_path: &Path,
    tests: &Path,
    format: TestFormat,
) -> Result<ExitCode, CliError> {
    let config = load_read_only(config_path)?;
    let text =
        std::fs::read_to_string(tests).invalid(format!("cannot read {}", tests.display()))?;
    let r = ossnotify::config_tests::run(&config, tests, &text)
        .map_err(|e| CliError::Invalid(flat(e)))?;
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

fn dead_letter(cmd: DeadLetterCommand) -> Result<ExitCode, CliError> {
    use ossnotify::dead_letter::{self as dl, Filter};
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

fn backlog(cmd: BacklogCommand) -> Result<ExitCode, CliError> {
    use ossnotify::backlog as b;
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

/// SIGINT or SIGTERM.
async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn mns_dev(a: MnsDevArgs) -> Result<ExitCode, CliError> {
    use ossnotify_sinks::mns::dev_server::{DevConfig, DevServer};
    for (flag, v) in [
        ("--fail-rate", a.fail_rate),
        ("--throttle-rate", a.throttle_rate),
        ("--drop-rate", a.drop_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(format!("{flag} must be between 0 and 1, not {v}")));
        }
    }
    let nonempty = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let cfg = DevConfig {
        access_key_id: a.access_key_id,
        access_key_secret: a.access_key_secret,
        security_token: a.security_token,
        topics: nonempty(a.topics),
        queues: nonempty(a.queues),
        record: a.record,
        fail_rate: a.fail_rate,
        fail_first: std::time::Duration::from_secs(a.fail_first_seconds),
        throttle_rate: a.throttle_rate,
        latency: std::time::Duration::from_millis(a.latency_ms),
        drop_rate: a.drop_rate,
        keep: a.keep,
        keep_bytes: a.keep_mib.saturating_mul(1 << 20),
        header_timeout: std::time::Duration::from_secs(a.header_timeout_secs),
        idle_timeout: std::time::Duration::from_secs(a.idle_timeout_secs),
        max_connections: a.max_connections,
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => {
            Some(ossnotify_sinks::mns::dev_server::tls_config(cert, key).map_err(invalid)?)
        }
        _ => None,
    };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .runtime(format!("cannot listen on {}", a.listen))?;
        let topics = cfg.topics.join(",");
        let queues = cfg.queues.join(",");
        let server = match tls {
            Some(tls) => DevServer::start_tls(cfg, listener, tls),
            None => DevServer::start(cfg, listener),
        }
        .runtime("cannot open the record file")?;
        // Tests and scripts wait for this line.
        println!(
            "mns-dev listening on {} (topics: {topics}; queues: {queues})",
            server.endpoint()
        );
        wait_for_stop().await;
        eprintln!(
            "mns-dev: {} requests, {} messages accepted",
            server.requests(),
            server.accepted_count()
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn print_diagnostics(diags: &[config::Diagnostic]) {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for d in diags {
        let _ = writeln!(out, "{d}");
    }
}

fn validate(path: &Path, no_environment: bool) -> Result<ExitCode, CliError> {
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

/// Loads a config for commands that run it: warnings to stderr, errors too
/// (each is already a located diagnostic).
fn load_for_run(path: &Path) -> Result<config::Config, CliError> {
    reported(config::load(path))
}

/// For commands that send nothing: the sinks' `${VAR}`s may be unset.
fn load_read_only(path: &Path) -> Result<config::Config, CliError> {
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
            release_freed_memory();
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

fn dry_run(
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
        Err(e) => Err(CliError::Runtime(flat(e).context(name))),
    }
}

fn plan(
    new_path: &Path,
    old_path: &Path,
    since: Option<&str>,
    input: Option<&Path>,
    format: ossnotify::plan::Format,
) -> Result<ExitCode, CliError> {
    use ossnotify::plan::{self, Plan};
    let new = load_read_only(new_path)?;
    let old = load_read_only(old_path)?;
    let since_ms = since
        .map(ossnotify::dead_letter::parse_time)
        .transpose()
        .invalid("--since")?
        .map(|t| t as i64);
    let mut planned = Plan::new(&new, &old, since_ms);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} records {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // The bar is moved every so many records, not per record.
    let mut since_tick = 0u64;
    let mut tick = || {
        since_tick += 1;
        if since_tick == 4096 {
            bar.inc(since_tick);
            since_tick = 0;
        }
    };
    match (input, since_ms) {
        (Some(path), _) => plan::compare_while_reading(&mut planned, |compare| {
            plan::read_file(path, |r| {
                compare(r);
                tick();
            })
        })
        .invalid(format!("cannot read {}", path.display()))?,
        (None, Some(since)) => {
            if new.source.kind != ossnotify::config::SourceType::Kafka {
                return Err(invalid(format!(
                    "{}: plan --since reads the source's Kafka topics, and this config's source is not Kafka; give an NDJSON file instead",
                    new_path.display()
                )));
            }
            let seek = plan::compare_while_reading(&mut planned, |compare| {
                plan::read_kafka(
                    &new,
                    since,
                    |n| bar.set_length(n),
                    |r| {
                        compare(r);
                        tick();
                    },
                )
            })
            .runtime("reading the source's topics")?;
            planned.seek(seek);
        }
        (None, None) => {
            return Err(invalid(
                "plan reads the source's topics (--since TIME) or an NDJSON file (INPUT): give one",
            ))
        }
    }
    bar.finish_and_clear();
    let report = planned.report();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = plan::write(
        &report,
        &new_path.display().to_string(),
        &old_path.display().to_string(),
        format,
        &mut out,
    )
    .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(CliError::Runtime(
                anyhow::Error::new(e).context("writing the plan"),
            ))
        }
        _ => {}
    }
    Ok(if report.has_changes() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// SIGTERM/SIGINT: stop consuming, drain, commit, exit 0; a second one
/// exits at once.
fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(wait_for_stop());
            tracing::info!("stopping: draining in-flight messages (a second signal exits at once)");
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            // A second SIGTERM/SIGINT: no drain, no last commit; what
            // was in flight is read again at the next start.
            rt.block_on(wait_for_stop());
            eprintln!("error: a second signal: exiting without draining; uncommitted records are read again at the next start");
            std::process::exit(EXIT_RUNTIME.into());
        }
    });
    stop
}

fn backfill(config_path: &Path, req: &ossnotify::backfill::Request) -> Result<ExitCode, CliError> {
    let config = load_for_run(config_path)?;
    let p = match ossnotify::backfill::prepare(config, req) {
        Ok(p) => p,
        Err(e @ ossnotify::backfill::BackfillError::Kafka(_)) => return Err(e).failed(),
        Err(e) => return Err(invalid(e)),
    };
    eprintln!(
        "backfill {}: up to {} records to read (group {}{})",
        p.name,
        p.total,
        p.group,
        if p.resumed > 0 {
            format!("; resumed on {} partitions", p.resumed)
        } else {
            String::new()
        }
    );
    let bar = indicatif::ProgressBar::new(p.total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} records {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let read = p.window.read.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (bar, done) = (bar.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                bar.set_position(read.load(std::sync::atomic::Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    let stop = stop_on_signals();
    let options = ossnotify::pipeline::RunOptions {
        reload: false,
        redeliver: false,
        ..Default::default()
    };
    let ran = ossnotify::pipeline::run_with(
        &p.config,
        ossnotify::pipeline::Input::Window(p.window),
        stop.clone(),
        options,
    );
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = ticker.join();
    bar.finish_and_clear();
    let s = match ran {
        Ok(s) => s,
        Err(e) => return Err(run_failed(e)),
    };
    let rules: Vec<&str> = p.config.rules.iter().map(|r| r.id.as_str()).collect();
    let per_sink: Vec<String> = s
        .sinks
        .iter()
        .map(|(name, delivered, dead, kept)| {
            format!(
                "{name}: {delivered} delivered, {dead} dead-lettered, {kept} kept in its backlog"
            )
        })
        .collect();
    let until = req
        .until_ms
        .map(|u| format!(" and before {}", ossnotify::oplog::time::utc(u)))
        .unwrap_or_default();
    eprintln!(
        "backfill {}: {} records read (operation times from {}{until}, up to where the live group had read); {} messages of rules {}: {}",
        p.name,
        s.records,
        ossnotify::oplog::time::utc(req.since_ms),
        s.messages,
        rules.join(", "),
        per_sink.join("; ")
    );
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!(
            "backfill {}: stopped; the same command resumes it where it stopped",
            p.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A run that failed: a destination that refused its probe is a config to
/// fix (exit 1); anything else failed while running (exit 2).
fn run_failed(e: ossnotify::pipeline::RunError) -> CliError {
    use ossnotify::pipeline::{PipelineError, RunError};
    match e {
        e @ RunError::Routing(PipelineError::SinkRefused { .. }) => invalid(e),
        e => CliError::Runtime(flat(e)),
    }
}
