//! Compatibility tooling: scenarios, HAR recordings of the legacy PHP, and their replay.
//!
//! - [`scenario`]: the scenario format (`compat/scenarios/*.json`).
//! - [`http`]: a raw HTTP/1.1 client (exact request bytes, incremental de-chunking).
//! - [`runner`]: runs one scenario against a server + database, observing every step.
//! - [`har`]: HAR 1.2 recordings and the table file beside each one.
//! - [`compare`]: normalisation and byte-level comparison with readable diffs.
//!
//! `chat-server record` drives every scenario against the legacy (compat/legacy-up) and writes
//! `compat/recordings/`; `chat-server replay` replays recordings (or an operator's own HAR)
//! against a server. tests/compat_replay.rs replays every recording against this crate's
//! server. compat/README.md explains the whole procedure.

pub mod compare;
pub mod har;
pub mod http;
pub mod runner;
pub mod scenario;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use compare::Difference;
use har::{Har, Recording};
use runner::{Check, ExchangeRecord, Outcome, Target};
use scenario::Scenario;

/// What can stop the compatibility tools (as opposed to a difference, which is a result).
#[derive(Debug)]
pub enum CompatError {
    /// A scenario file is malformed or inconsistent.
    Scenario(String),
    /// Connecting to or talking HTTP with the server failed.
    Http(String),
    /// The database could not be prepared or read.
    Db(String),
    /// A HAR or table file is malformed.
    Har(String),
    /// Reading or writing a file failed.
    Io(PathBuf, std::io::Error),
    /// Recording produced something that cannot serve as a reference.
    Recording(String),
}

impl CompatError {
    fn io(path: &Path, err: std::io::Error) -> CompatError {
        CompatError::Io(path.to_owned(), err)
    }
}

impl fmt::Display for CompatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatError::Scenario(m) => write!(f, "scenario: {m}"),
            CompatError::Http(m) => write!(f, "http: {m}"),
            CompatError::Db(m) => write!(f, "database: {m}"),
            CompatError::Har(m) => write!(f, "recording file: {m}"),
            CompatError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CompatError::Recording(m) => write!(f, "recording: {m}"),
        }
    }
}

impl std::error::Error for CompatError {}

/// Arguments of `chat-server record`.
#[derive(clap::Args, Debug, Clone)]
pub struct RecordArgs {
    /// Directory of scenario files.
    #[arg(long, env = "COMPAT_SCENARIOS", default_value = "compat/scenarios")]
    pub scenarios: PathBuf,
    /// Where to write `<name>.har` and `<name>.table.json`.
    #[arg(long, env = "COMPAT_RECORDINGS", default_value = "compat/recordings")]
    pub out: PathBuf,
    /// Base URL of the legacy site (compat/legacy-up serves it here).
    #[arg(long, env = "LEGACY_URL", default_value = "http://127.0.0.1:8089")]
    pub against: String,
    /// The database the legacy PHP uses (AJconn.php hard-codes `test` on localhost).
    #[arg(
        long,
        env = "LEGACY_DATABASE_URL",
        default_value = "mysql://root@127.0.0.1:3306/test"
    )]
    pub database_url: String,
    /// Shell command run before every scenario to end PHP workers left by the previous one
    /// (an empty string runs nothing).
    #[arg(
        long,
        env = "LEGACY_RESET_COMMAND",
        default_value = "compat/legacy-up reset"
    )]
    pub reset_command: String,
    /// Record only these scenarios (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
}

/// Arguments of `chat-server replay`.
///
/// Three modes: `--har FILE --against URL` replays an operator's own browser recording;
/// `--recordings DIR --against URL --database-url URL` replays the scenario recordings against
/// a running server; `--recordings NEW --compare-with OLD` checks two recording sets agree.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    /// A HAR file (e.g. exported from a browser's developer tools) to replay request by request.
    #[arg(long, conflicts_with_all = ["compare_with"])]
    pub har: Option<PathBuf>,
    /// Base URL of the server to check.
    #[arg(long, env = "REPLAY_AGAINST")]
    pub against: Option<String>,
    /// Per-request bound in `--har` mode, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// In `--har` mode, requests are sent at their recorded offsets; longer pauses are cut to
    /// this many milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub max_gap_ms: u64,
    /// Directory of scenario files.
    #[arg(long, env = "COMPAT_SCENARIOS", default_value = "compat/scenarios")]
    pub scenarios: PathBuf,
    /// Directory of scenario recordings.
    #[arg(long, env = "COMPAT_RECORDINGS", default_value = "compat/recordings")]
    pub recordings: PathBuf,
    /// Database of the server under test; its `msg` table is recreated for every scenario.
    #[arg(long, env = "REPLAY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Shell command run before every scenario (e.g. `compat/legacy-up reset` when replaying
    /// against the legacy itself).
    #[arg(long, default_value = "")]
    pub reset_command: String,
    /// Compare the recordings in `--recordings` with those in this directory, without a server.
    #[arg(long)]
    pub compare_with: Option<PathBuf>,
    /// Only these scenarios (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
}

/// Runs `chat-server record`.
pub async fn record(args: RecordArgs) -> ExitCode {
    match record_all(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("record: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn record_all(args: &RecordArgs) -> Result<(), CompatError> {
    let scenarios = selected(Scenario::load_dir(&args.scenarios)?, &args.only)?;
    let target = Target {
        base_url: args.against.clone(),
        database_url: args.database_url.clone(),
    };
    for scenario in &scenarios {
        run_reset(&args.reset_command)?;
        let outcome = runner::run_scenario(scenario, &target).await?;
        check_recordable(scenario, &outcome)?;
        Recording::of(&outcome).save(&args.out, &scenario.name)?;
        println!(
            "recorded {:<40} {} request(s), {} row(s)",
            scenario.name,
            outcome.exchanges.len(),
            outcome.table.rows.len()
        );
    }
    Ok(())
}

/// A recording is only a reference if the legacy answered every request the scenario awaited
/// (or the scenario states the intended answer as a deviation) and every stream read reached
/// its count.
pub fn check_recordable(scenario: &Scenario, outcome: &Outcome) -> Result<(), CompatError> {
    for x in &outcome.exchanges {
        let excused = scenario
            .deviation
            .as_ref()
            .is_some_and(|d| d.responses.contains_key(&x.id) || d.no_response.contains(&x.id));
        for check in &x.checks {
            let failed = matches!(
                check,
                Check::Complete(false) | Check::Read { reached: false, .. }
            );
            if failed && !excused {
                return Err(CompatError::Recording(format!(
                    "{}: the legacy did not answer {:?} in time ({check:?}); use a `pending` step if it never does",
                    scenario.name, x.id
                )));
            }
        }
    }
    Ok(())
}

fn selected(scenarios: Vec<Scenario>, only: &[String]) -> Result<Vec<Scenario>, CompatError> {
    if only.is_empty() {
        return Ok(scenarios);
    }
    for name in only {
        if !scenarios.iter().any(|s| &s.name == name) {
            return Err(CompatError::Scenario(format!("no scenario named {name:?}")));
        }
    }
    Ok(scenarios
        .into_iter()
        .filter(|s| only.contains(&s.name))
        .collect())
}

fn run_reset(command: &str) -> Result<(), CompatError> {
    if command.trim().is_empty() {
        return Ok(());
    }
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .map_err(|e| CompatError::Recording(format!("reset command {command:?}: {e}")))?;
    if !status.success() {
        return Err(CompatError::Recording(format!(
            "reset command {command:?} failed: {status}"
        )));
    }
    Ok(())
}

/// Replays scenario `scenario` against `target` and compares with its recording in
/// `recordings` (deviations applied). An empty list means byte-for-byte agreement.
pub async fn replay_scenario(
    scenario: &Scenario,
    recordings: &Path,
    target: &Target,
) -> Result<Vec<Difference>, CompatError> {
    let recorded = Recording::load(recordings, &scenario.name)?.outcome()?;
    let expected = compare::expected_outcome(scenario, &recorded)?;
    let actual = runner::run_scenario(scenario, target).await?;
    Ok(compare::compare(&expected, &actual))
}

/// Formats one scenario's differences for a report.
pub fn report(scenario: &str, differences: &[Difference]) -> String {
    let mut out = format!("scenario {scenario}: {} difference(s)\n", differences.len());
    for d in differences {
        out.push_str(&format!("  {d}\n"));
    }
    out
}

/// Runs `chat-server replay`.
pub async fn replay(args: ReplayArgs) -> ExitCode {
    let result = if let Some(har) = &args.har {
        replay_har(&args, har).await
    } else if let Some(old) = &args.compare_with {
        compare_recordings(&args, old)
    } else {
        replay_recordings(&args).await
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("replay: {n} disagreement(s)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("replay: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn replay_recordings(args: &ReplayArgs) -> Result<usize, CompatError> {
    let (Some(against), Some(database_url)) = (&args.against, &args.database_url) else {
        return Err(CompatError::Scenario(
            "give --against URL and --database-url URL (or --har FILE, or --compare-with DIR)"
                .into(),
        ));
    };
    let target = Target {
        base_url: against.clone(),
        database_url: database_url.clone(),
    };
    let scenarios = selected(Scenario::load_dir(&args.scenarios)?, &args.only)?;
    let mut failing = 0;
    for scenario in &scenarios {
        run_reset(&args.reset_command)?;
        let differences = replay_scenario(scenario, &args.recordings, &target).await?;
        if differences.is_empty() {
            println!("ok   {}", scenario.name);
        } else {
            failing += 1;
            print!("FAIL {}", report(&scenario.name, &differences));
        }
    }
    println!(
        "{} scenario(s), {} passing, {failing} failing",
        scenarios.len(),
        scenarios.len() - failing
    );
    Ok(failing)
}

fn compare_recordings(args: &ReplayArgs, old: &Path) -> Result<usize, CompatError> {
    let scenarios = selected(Scenario::load_dir(&args.scenarios)?, &args.only)?;
    let mut changed = 0;
    for scenario in &scenarios {
        let before = Recording::load(old, &scenario.name)?.outcome()?;
        let after = Recording::load(&args.recordings, &scenario.name)?.outcome()?;
        let differences = compare::compare(&before, &after);
        if !differences.is_empty() {
            changed += 1;
            print!("CHANGED {}", report(&scenario.name, &differences));
        }
    }
    println!(
        "{} recording(s) compared, {changed} changed",
        scenarios.len()
    );
    Ok(changed)
}

/// Request headers not replayed from an operator's HAR: the client's own framing and
/// connection handling (re-done by our client), HTTP/2 pseudo-headers, and `Accept-Encoding`
/// (HAR bodies are stored decoded, so the replay asks for an identity body).
const HOP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
    "accept-encoding",
];

async fn replay_har(args: &ReplayArgs, path: &Path) -> Result<usize, CompatError> {
    let against = args
        .against
        .as_deref()
        .ok_or_else(|| CompatError::Scenario("--har needs --against URL".into()))?;
    let (authority, prefix) = http::split_base_url(against)?;
    let har: Har = har::read_json(path)?;
    let recorded = har::exchanges_of(&har)?;
    // Requests go out at their recorded offsets (gaps capped) without waiting for earlier
    // answers, as the browser sent them: a long poll recorded before the message that answered
    // it must be waiting when that message is sent.
    let offsets = start_offsets(&har, args.max_gap_ms);
    let origin = tokio::time::Instant::now();
    let mut running = Vec::new();
    for (i, expected) in recorded.iter().enumerate() {
        tokio::time::sleep_until(origin + Duration::from_millis(offsets[i])).await;
        let target = format!("{prefix}{}", path_of(&expected.url));
        let headers: Vec<(String, Vec<u8>)> = expected
            .request_headers
            .iter()
            .filter(|(n, _)| {
                !n.starts_with(':') && !HOP_HEADERS.contains(&n.to_ascii_lowercase().as_str())
            })
            .cloned()
            .collect();
        let bytes = http::build_request(
            &expected.method,
            &target,
            &authority,
            &headers,
            &expected.request_body,
        );
        let exchange = http::Exchange::send(&authority, &bytes, expected.method == "HEAD").await?;
        // A response the HAR holds only part of (a stream) is read up to that length.
        let want_len = expected
            .response
            .as_ref()
            .filter(|r| !r.complete)
            .map(|r| r.body.len());
        let timeout = Duration::from_millis(args.timeout_ms);
        running.push((
            target,
            headers,
            tokio::spawn(async move {
                let mut exchange = exchange;
                let deadline = tokio::time::Instant::now() + timeout;
                let done = match want_len {
                    Some(len) => exchange.read_until(deadline, |x| x.body.len() >= len).await,
                    None => exchange.read_until(deadline, |x| x.complete).await,
                };
                done.map(|done| (done, exchange))
            }),
        ));
    }
    let mut failing = 0;
    for (expected, (target, headers, task)) in recorded.iter().zip(running) {
        let label = format!("{} {} {}", expected.id, expected.method, target);
        let (done, exchange) = task
            .await
            .map_err(|e| CompatError::Http(format!("{label}: {e}")))??;
        let Some(want_response) = &expected.response else {
            println!("skip {label}: the HAR has no response for it");
            continue;
        };
        if !done {
            failing += 1;
            println!("FAIL {label}: no answer within {} ms", args.timeout_ms);
            continue;
        }
        let mut body = exchange.body;
        if !want_response.complete {
            body.truncate(want_response.body.len());
        }
        let actual = ExchangeRecord {
            id: expected.id.clone(),
            method: expected.method.clone(),
            url: format!("http://{authority}{target}"),
            request_headers: headers,
            request_body: expected.request_body.clone(),
            started: SystemTime::now(),
            elapsed_ms: 0.0,
            response: exchange.head.map(|head| runner::RecordedResponse {
                version: head.version,
                status: head.status,
                reason: head.reason,
                headers: head.headers,
                body,
                complete: want_response.complete,
            }),
            checks: Vec::new(),
        };
        let mut want = expected.clone();
        want.checks.clear();
        if let (Some(w), Some(a)) = (want.response.as_mut(), &actual.response) {
            // Browsers leave out bodies they did not keep; compare what the HAR has.
            if w.body.is_empty() && har_body_missing(&har, &expected.id) {
                w.body = a.body.clone();
            }
        }
        let mut differences = Vec::new();
        compare::compare_exchange(&want, &actual, &mut differences);
        if differences.is_empty() {
            println!("ok   {label}");
        } else {
            failing += 1;
            print!("FAIL {}", report(&label, &differences));
        }
    }
    println!("{} request(s), {failing} disagreement(s)", recorded.len());
    Ok(failing)
}

/// Milliseconds after the first request at which each entry was sent, with every gap capped
/// at `max_gap_ms`; entries without a readable time follow the previous one at once.
fn start_offsets(har: &Har, max_gap_ms: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(har.log.entries.len());
    let mut previous: Option<i64> = None;
    let mut at = 0u64;
    for entry in &har.log.entries {
        let this = har::parse_iso8601_ms(&entry.started_date_time);
        if let (Some(prev), Some(now)) = (previous, this) {
            let gap = u64::try_from(now - prev).unwrap_or(0).min(max_gap_ms);
            at += gap;
        }
        previous = this.or(previous);
        out.push(at);
    }
    out
}

fn har_body_missing(har: &Har, id: &str) -> bool {
    har.log
        .entries
        .iter()
        .enumerate()
        .find(|(i, e)| {
            e.id.as_deref()
                .map_or(format!("entry {}", i + 1) == id, |x| x == id)
        })
        .is_some_and(|(_, e)| e.response.content.text.is_none())
}

/// The request target (path and query) of an absolute or relative URL.
fn path_of(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|r| r.find('/').map_or("/", |i| &r[i..]))
        .unwrap_or(url);
    let rest = rest.split('#').next().unwrap_or(rest);
    if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    }
}
