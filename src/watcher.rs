//! The watcher: one background query per instance that finds messages written by anyone but this
//! instance (the legacy PHP during a migration, another instance, a direct INSERT) and wakes their
//! recipients. It also wakes everyone when MySQL comes back after an outage.
//!
//! Its cost does not grow with the number of waiting clients: it reads the rows newer than a
//! low-water mark by primary key. The mark is not a plain "highest id seen": auto-increment ids
//! are handed out at insert but become visible at commit, so id 7 can appear after id 8. The mark
//! only moves past an id once that id has been seen, or has stayed missing under newer rows for
//! the late-commit grace (then it was rolled back, or belongs to another server's
//! auto_increment_offset).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::hub::Hub;
use crate::shutdown::Shutdown;
use crate::store::{RecentRow, Store};

/// Most rows read per tick; more wait for the next tick.
const BATCH: u64 = 5_000;
/// Longest pause between attempts while MySQL is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Which ids the watcher has accounted for.
#[derive(Debug, Default)]
pub struct Progress {
    /// Every id up to here is settled (seen or given up on).
    low: u64,
    /// Ids above `low` already seen.
    seen: BTreeSet<u64>,
    /// Since when `low + 1` has been missing below a newer row.
    missing_since: Option<(u64, Instant)>,
}

impl Progress {
    /// Starts after `low`: rows up to it are found by the waiters' own first query.
    pub fn starting_after(low: u64) -> Progress {
        Progress {
            low,
            ..Progress::default()
        }
    }

    /// The id to read after.
    pub fn low(&self) -> u64 {
        self.low
    }

    /// Takes in one batch; returns the recipients of unread rows not seen before.
    pub fn observe(&mut self, rows: &[RecentRow], now: Instant, grace: Duration) -> Vec<Vec<u8>> {
        let mut to_wake = Vec::new();
        for row in rows {
            if row.mid > self.low && self.seen.insert(row.mid) && !row.is_read {
                to_wake.push(row.recipient.clone());
            }
        }
        self.advance(now, grace);
        to_wake
    }

    fn advance(&mut self, now: Instant, grace: Duration) {
        while let Some(&next_seen) = self.seen.first() {
            if next_seen == self.low + 1 {
                self.seen.pop_first();
                self.low = next_seen;
                continue;
            }
            // A hole below a visible row: wait for it to commit, but not forever.
            match self.missing_since {
                Some((low, since)) if low == self.low => {
                    if now.duration_since(since) < grace {
                        return;
                    }
                    self.low = next_seen - 1;
                }
                _ => {
                    self.missing_since = Some((self.low, now));
                    return;
                }
            }
        }
    }
}

/// Runs until shutdown.
pub async fn run(
    store: Store,
    hub: Arc<Hub>,
    interval: Duration,
    grace: Duration,
    shutdown: Shutdown,
) {
    // Start above every possible id: the first tick then sees the newest row below the mark,
    // takes the table's end as its start and wakes everyone, exactly as after a TRUNCATE, so a
    // row that landed between a waiter's first query and the start is not skipped.
    let mut progress = Progress::starting_after(u64::MAX);
    let mut healthy = true;
    let mut pause = interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.wait() => return,
        }
        match tick(&store, &hub, &mut progress, grace).await {
            Ok(()) => {
                if !healthy {
                    tracing::info!("database reachable again; waking every waiter");
                }
                if !healthy | hub.take_db_failure() {
                    hub.notify_all();
                }
                hub.mark_watching();
                healthy = true;
                pause = interval;
            }
            Err(err) => {
                if healthy {
                    tracing::warn!(%err, "database unreachable; waiting requests stay parked");
                }
                healthy = false;
                pause = (pause * 2).min(MAX_BACKOFF).max(interval);
            }
        }
    }
}

async fn tick(
    store: &Store,
    hub: &Hub,
    progress: &mut Progress,
    grace: Duration,
) -> Result<(), crate::Error> {
    let rows = store.rows_after(progress.low(), BATCH).await?;
    if let Some(newest) = rows.last().filter(|newest| newest.mid < progress.low()) {
        // The newest id is below the mark: this is the first tick, or the table was emptied or
        // recreated (TRUNCATE resets AUTO_INCREMENT). Watch from its end, and wake everyone for
        // the rows already there.
        tracing::info!(end = newest.mid, "watching msg from its newest row");
        *progress = Progress::starting_after(newest.mid);
        hub.notify_all();
        return Ok(());
    }
    for recipient in progress.observe(&rows, Instant::now(), grace) {
        hub.notify(&recipient);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mid: u64, recipient: &str, is_read: bool) -> RecentRow {
        RecentRow {
            mid,
            recipient: recipient.as_bytes().to_vec(),
            is_read,
        }
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn wakes_each_unread_row_once() {
        let now = Instant::now();
        let mut progress = Progress::starting_after(0);
        assert_eq!(
            progress.observe(&[row(1, "a", false), row(2, "b", true)], now, GRACE),
            vec![b"a".to_vec()]
        );
        assert_eq!(progress.low(), 2);
        assert!(progress.observe(&[], now, GRACE).is_empty());
    }

    #[test]
    fn a_late_commit_below_a_newer_row_is_still_seen() {
        let now = Instant::now();
        let mut progress = Progress::starting_after(0);
        progress.observe(&[row(1, "a", false), row(3, "c", false)], now, GRACE);
        assert_eq!(progress.low(), 1, "id 2 is not committed yet");
        // Next tick re-reads from 1: row 3 is not woken twice, the late row 2 is.
        let woken = progress.observe(&[row(2, "b", false), row(3, "c", false)], now, GRACE);
        assert_eq!(woken, vec![b"b".to_vec()]);
        assert_eq!(progress.low(), 3);
    }

    #[test]
    fn a_hole_is_given_up_after_the_grace() {
        let start = Instant::now();
        let mut progress = Progress::starting_after(10);
        progress.observe(&[row(12, "a", false)], start, GRACE);
        assert_eq!(progress.low(), 10);
        progress.observe(&[row(12, "a", false)], start + GRACE / 2, GRACE);
        assert_eq!(progress.low(), 10);
        progress.observe(&[row(12, "a", false)], start + GRACE, GRACE);
        assert_eq!(progress.low(), 12);
    }
}
