//! Replays every committed recording of the legacy PHP (compat/recordings, made by
//! `chat-compat record` against compat/legacy-up) against this crate's server: a fresh
//! database and a fresh server per scenario, the scenario's steps driven by the same runner
//! that recorded them, and status, Content-Type, Set-Cookie, body bytes and the final table
//! compared after the normalisation rules of compat/README.md. Deviation scenarios are checked
//! against the behaviour they state instead.
//!
//! `COMPAT_RECORDINGS` selects another recording directory (compat/check-live uses a fresh
//! one), `COMPAT_ONLY=a,b` a subset of scenarios, `COMPAT_JOBS` how many run at once (4).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::{TestDb, TestServer};
use chat_compat::compare::{self, Difference};
use chat_compat::har::Recording;
use chat_compat::replay::report;
use chat_compat::runner::{self, Target};
use chat_compat::scenario::Scenario;
use tokio::sync::Semaphore;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn recordings_dir() -> PathBuf {
    std::env::var_os("COMPAT_RECORDINGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path("compat/recordings"))
}

/// Replays one scenario; `Ok(vec![])` means byte-for-byte agreement.
async fn replay_one(scenario: Scenario, recordings: PathBuf) -> Result<Vec<Difference>, String> {
    let recorded = Recording::load(&recordings, &scenario.name)
        .and_then(|r| r.outcome())
        .map_err(|e| format!("recording missing or unreadable: {e}"))?;
    let expected = compare::expected_outcome(&scenario, &recorded).map_err(|e| e.to_string())?;
    let db = TestDb::create().await;
    // The table exists before the server starts, as it does in production.
    runner::prepare(&scenario, &db.url)
        .await
        .map_err(|e| format!("preparing the database: {e}"))?;
    let server = TestServer::start(&db).await;
    let target = Target {
        base_url: server.base_url.clone(),
        database_url: db.url.clone(),
    };
    let actual = runner::run_prepared(&scenario, &target).await;
    server.stop().await;
    let actual = actual.map_err(|e| format!("running the scenario: {e}"))?;
    Ok(compare::compare(&expected, &actual))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_recording_replays_byte_for_byte_against_our_server() {
    let scenarios =
        Scenario::load_dir(&repo_path("compat/scenarios")).expect("compat/scenarios loads");
    let only: Vec<String> = std::env::var("COMPAT_ONLY")
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let scenarios: Vec<Scenario> = scenarios
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .collect();
    assert!(
        !scenarios.is_empty(),
        "no scenarios selected (COMPAT_ONLY={only:?}); an empty replay proves nothing"
    );
    let jobs = std::env::var("COMPAT_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let recordings = recordings_dir();
    let limit = Arc::new(Semaphore::new(jobs));
    let mut tasks = Vec::new();
    for scenario in scenarios {
        let permit_source = Arc::clone(&limit);
        let recordings = recordings.clone();
        let name = scenario.name.clone();
        let deviation = scenario.deviation.is_some();
        tasks.push((
            name,
            deviation,
            tokio::spawn(async move {
                let _permit = permit_source
                    .acquire_owned()
                    .await
                    .expect("semaphore stays open");
                replay_one(scenario, recordings).await
            }),
        ));
    }
    let total = tasks.len();
    let mut deviations = 0;
    let mut failures = Vec::new();
    for (name, deviation, task) in tasks {
        deviations += usize::from(deviation);
        let result = match task.await {
            Ok(result) => result,
            Err(e) => Err(format!("panicked: {e}")),
        };
        match result {
            Ok(diffs) if diffs.is_empty() => {}
            Ok(diffs) => failures.push(report(&name, &diffs)),
            Err(e) => failures.push(format!("scenario {name}: {e}\n")),
        }
    }
    eprintln!(
        "compat replay ({}): {total} scenarios ({deviations} deliberate deviations), {} passing, {} failing",
        recordings.display(),
        total - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} scenarios disagree with the recordings:\n{}",
        failures.len(),
        failures.concat()
    );
}
