//! The command line's arguments (clap): one variant per command, each
//! documented as `--help` shows it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ossnotify",
    version,
    about = "Object-storage operation logs in, OSS event notifications out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    Backfill(BackfillArgs),
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
pub enum DeadLetterCommand {
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
pub enum BacklogCommand {
    /// One line per message: sink, id, write time, rule, key, bytes.
    Ls(BacklogArgs),
    /// Per sink: messages, bytes, the oldest's age, and where.
    Stats(BacklogArgs),
    /// Messages as JSON, payloads decoded.
    Show(BacklogArgs),
}

#[derive(clap::Args)]
pub struct BacklogArgs {
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only this sink's backlog.
    #[arg(long)]
    pub sink: Option<String>,
}

#[derive(clap::Args)]
pub struct DeadLetterArgs {
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only entries of this sink.
    #[arg(long)]
    pub sink: Option<String>,
    /// Only entries of this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only entries of this kind: delivery or invalid_record.
    #[arg(long)]
    pub kind: Option<ossnotify_sinks::DeadLetterKind>,
    /// Only entries written at or after this time: an age (30m, 2h, 7d), RFC 3339 or epoch ms.
    #[arg(long)]
    pub since: Option<String>,
    /// Only entries written before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// A rule whose notifications to send (repeat for more).
    #[arg(long = "rule", value_name = "ID", required = true)]
    pub rules: Vec<String>,
    /// The earliest operation time: an age (30m, 2h, 7d), RFC 3339 or epoch ms.
    #[arg(long, value_name = "TIME")]
    pub since: String,
    /// Only operations before this time (same forms); the window always ends where the live group had read.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Records per second at most.
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
    /// Names the backfill (its group is {group_id}.backfill.NAME); the rules' ids joined by "+" by default.
    #[arg(long)]
    pub name: Option<String>,
    /// Start again from --since, forgetting a stopped backfill of this name.
    #[arg(long)]
    pub restart: bool,
    /// Serve /metrics here while it runs.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(clap::Args)]
pub struct TapArgs {
    /// The daemon's metrics server.
    #[arg(long, default_value = "http://127.0.0.1:9898")]
    pub url: String,
    /// Only messages of this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only messages about this bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Only messages going to this sink.
    #[arg(long)]
    pub sink: Option<String>,
    /// Only this event (ObjectCreated:PutObject), or a prefix ending in * (ObjectCreated:*).
    #[arg(long)]
    pub event: Option<String>,
    /// Keep this share of the matching messages, in (0, 1].
    #[arg(long)]
    pub sample: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Also print each notification's JSON.
    #[arg(long)]
    pub full: bool,
    /// The environment variable holding the daemon's [metrics] tap_token (sent as a bearer token).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

#[derive(clap::Args)]
pub struct LoadgenArgs {
    /// Kafka brokers (host:port,…); with --topic.
    #[arg(long, requires = "topic")]
    pub brokers: Option<String>,
    #[arg(long)]
    pub topic: Option<String>,
    /// Write NDJSON to this file instead of Kafka.
    #[arg(long, conflicts_with = "brokers")]
    pub file: Option<PathBuf>,
    /// Records to write.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Records per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Cycle through this file's lines instead of generating records.
    #[arg(long)]
    pub input: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(clap::Args)]
pub struct MnsDevArgs {
    /// Address to listen on, e.g. 127.0.0.1:9900.
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub listen: String,
    #[arg(long)]
    pub access_key_id: String,
    #[arg(long)]
    pub access_key_secret: String,
    /// Require this STS security token (the `security-token` header) with the key.
    #[arg(long)]
    pub security_token: Option<String>,
    /// Topics that exist, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub topics: Vec<String>,
    /// Queues that exist, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub queues: Vec<String>,
    /// Append every accepted message to this file, one JSON object per line.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Share (0..1) of requests answered 503 (of batch entries: failed with InternalError).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Answer 503 to everything for this many seconds after start.
    #[arg(long, default_value_t = 0)]
    pub fail_first_seconds: u64,
    /// Share (0..1) of requests answered QpsLimitExceeded.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Milliseconds added to every answer.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0..1) of requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Newest accepted messages kept in memory (counts and --record cover all).
    #[arg(long, default_value_t = 10_000)]
    pub keep: usize,
    /// At most this many MiB of kept message bodies.
    #[arg(long, default_value_t = 64)]
    pub keep_mib: usize,
    /// Seconds a client has to send a request's headers; also closes idle
    /// keep-alive connections.
    #[arg(long, default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Longest silence, in seconds, while a request body arrives.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// How `ossnotify test` reports.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Text,
    Junit,
}
