//! `chat-compat record`: drives every scenario against the legacy PHP and writes the recordings.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::har::Recording;
use crate::provenance::Provenance;
use crate::runner::{self, Check, Outcome, Target};
use crate::scenario::Scenario;
use crate::CompatError;

/// Arguments of `chat-compat record`.
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
    /// Command whose first output line names the PHP that serves the legacy (written into every
    /// HAR's `log.comment`; compat/legacy-up runs this php-fpm).
    #[arg(
        long,
        env = "LEGACY_PHP_VERSION_COMMAND",
        default_value = "/usr/sbin/php-fpm8.2 -v"
    )]
    pub php_version_command: String,
    /// Record only these scenarios (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
}

/// Runs `chat-compat record`.
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
    let provenance =
        Provenance::observe(&args.php_version_command, &args.against, &args.database_url).await;
    println!("{}", provenance.comment());
    for scenario in &scenarios {
        run_reset(&args.reset_command)?;
        let outcome = runner::run_scenario(scenario, &target).await?;
        check_recordable(scenario, &outcome)?;
        let mut recording = Recording::of(&outcome);
        let log = &mut recording.har.log;
        log.creator.comment = Some(provenance.comment());
        log.comment = Some(provenance.comment());
        log.legacy = Some(provenance.clone());
        recording.save(&args.out, &scenario.name)?;
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

pub(crate) fn selected(
    scenarios: Vec<Scenario>,
    only: &[String],
) -> Result<Vec<Scenario>, CompatError> {
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

pub(crate) fn run_reset(command: &str) -> Result<(), CompatError> {
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
