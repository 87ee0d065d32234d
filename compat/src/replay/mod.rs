//! `chat-compat replay`: the scenario recordings against a running server, or two recording
//! sets against each other; `--har` hands over to the child module `har`.

mod har;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::compare::{self, Difference};
use crate::har::Recording;
use crate::record::{run_reset, selected};
use crate::runner::{self, Target};
use crate::scenario::Scenario;
use crate::CompatError;

/// Arguments of `chat-compat replay`.
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

/// Runs `chat-compat replay`.
pub async fn replay(args: ReplayArgs) -> ExitCode {
    let result = if let Some(har) = &args.har {
        har::replay_har(&args, har).await
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
