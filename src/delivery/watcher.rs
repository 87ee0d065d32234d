//! The watcher: one background task per instance that keeps the unread index ([`Inbox`]) in step
//! with the table and wakes the recipients of rows written by anyone but this instance (the
//! legacy PHP during a migration, another instance, a direct INSERT).
//!
//! Its cost does not grow with the number of waiting clients or the size of the table: each tick
//! reads the rows above the highest id seen, by primary key, page after page until none is left.
//! Ids are handed out at insert but become visible at commit, so a lower id can appear after a
//! higher one; and under `auto_increment_increment` (Galera, multi-master) or after rollbacks
//! some ids never appear at all. Every id skipped below the highest is a *hole* with a grace of
//! its own, looked up again by primary key on a doubling schedule until it appears or its grace
//! ends. Holes are bounded in number and in lookups per tick; what falls outside those bounds
//! (and rows made unread again by hand) is caught by the rescan, one scan of the unread rows at
//! a long interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::delivery::binlog::Feed;
use crate::delivery::hub::Hub;
use crate::delivery::inbox::Inbox;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{RecentRow, Store};

/// Rows read per query; a larger burst takes several queries in the same tick.
const PAGE: u64 = 5_000;
/// Most holes remembered; beyond it the oldest are left to the rescan.
const MAX_HOLES: usize = 20_000;
/// Most holes looked up per tick.
const HOLE_LOOKUPS_PER_TICK: usize = 2_000;
/// Ids just below the newest row at start-up that are checked for late commits.
const STARTUP_WINDOW: u64 = 1_000;
/// First pause before looking again for rows the binlog showed but the table did not yet.
const MIN_LOOK_AGAIN: Duration = Duration::from_millis(1);
/// Longest pause between attempts while MySQL is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How the watcher paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Pause between ticks.
    pub interval: Duration,
    /// How long a hole is awaited.
    pub grace: Duration,
    /// Pause between full rescans of the unread rows; `None` never rescans.
    pub rescan: Option<Duration>,
}

/// An id not seen below the highest id seen.
#[derive(Debug, Clone, Copy)]
struct Hole {
    since: Instant,
    next_lookup: Instant,
    lookups: u32,
}

/// Which ids the watcher has accounted for.
#[derive(Debug, Default)]
pub struct Progress {
    /// The highest id seen.
    high: u64,
    /// Ids below `high` not seen yet, still within their grace.
    holes: BTreeMap<u64, Hole>,
}

impl Progress {
    /// Starts above `high`, with the ids missing among `known` (ids at or below `high`) as holes.
    pub fn starting_at(high: u64, known: &[u64], now: Instant) -> Progress {
        let mut progress = Progress::default();
        let floor = known.first().copied().unwrap_or(high);
        progress.note_holes(floor, high, now);
        for mid in known {
            progress.holes.remove(mid);
        }
        progress.high = high;
        progress
    }

    /// The highest id seen.
    pub fn high(&self) -> u64 {
        self.high
    }

    /// Whether ids below the highest are still awaited (they need lookups on the interval).
    pub fn has_holes(&self) -> bool {
        !self.holes.is_empty()
    }

    /// How many holes are awaited.
    #[cfg(test)]
    pub fn hole_count(&self) -> usize {
        self.holes.len()
    }

    /// Takes in rows; returns the unread ones not seen before.
    pub fn observe<'a>(&mut self, rows: &'a [RecentRow], now: Instant) -> Vec<&'a RecentRow> {
        let mut fresh = Vec::new();
        for row in rows {
            let new = if row.mid > self.high {
                self.note_holes(self.high, row.mid, now);
                self.high = row.mid;
                true
            } else {
                self.holes.remove(&row.mid).is_some()
            };
            if new && !row.is_read {
                fresh.push(row);
            }
        }
        fresh
    }

    /// The holes to look up now (each then waits twice as long as before), after dropping those
    /// whose grace has ended.
    pub fn holes_due(&mut self, now: Instant, grace: Duration, base: Duration) -> Vec<u64> {
        self.holes
            .retain(|_, hole| now.duration_since(hole.since) < grace);
        let mut due = Vec::new();
        for (&mid, hole) in self.holes.iter_mut() {
            if due.len() == HOLE_LOOKUPS_PER_TICK {
                break;
            }
            if hole.next_lookup <= now {
                hole.lookups += 1;
                hole.next_lookup = now + base * 2u32.saturating_pow(hole.lookups.min(16));
                due.push(mid);
            }
        }
        due
    }

    /// Records the ids strictly between `below` and `above` as holes, the newest first when
    /// there are more than fit.
    fn note_holes(&mut self, below: u64, above: u64, now: Instant) {
        let first = below
            .saturating_add(1)
            .max(above.saturating_sub(MAX_HOLES as u64));
        for mid in first..above {
            self.holes.insert(
                mid,
                Hole {
                    since: now,
                    next_lookup: now,
                    lookups: 0,
                },
            );
        }
        while self.holes.len() > MAX_HOLES {
            self.holes.pop_first();
        }
    }
}

/// The watcher's moving parts.
#[derive(Debug, Clone)]
pub struct Watcher {
    /// The table.
    pub store: Store,
    /// Whom to wake.
    pub hub: Arc<Hub>,
    /// The unread index it keeps.
    pub inbox: Arc<Inbox>,
    /// Its pace.
    pub pace: Pace,
    /// Nudges from the binlog, and whether they can be relied on instead of the timer.
    pub feed: Arc<Feed>,
    /// Where its ticks and queries are counted.
    pub meters: Arc<Metrics>,
}

/// Sleeps for `pause`, or forever for `None`.
async fn sleep_or_never(pause: Option<Duration>) {
    match pause {
        Some(pause) => tokio::time::sleep(pause).await,
        None => std::future::pending().await,
    }
}

impl Watcher {
    /// Runs until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        let mut state: Option<(Progress, Instant)> = None;
        let mut pause = Duration::ZERO;
        let mut healthy = true;
        let mut switches = self.store.switches();
        let mut live = self.feed.watch_live();
        let mut soon = MIN_LOOK_AGAIN;
        loop {
            let pushed = *live.borrow_and_update() && healthy;
            let timer = self.time_to_tick(state.as_ref(), pushed, pause, &mut soon);
            tokio::select! {
                () = sleep_or_never(timer) => {}
                () = self.feed.nudged() => {}
                // Going live or losing the stream: one tick either way reads what was written
                // while neither the stream nor the timer was looking.
                _ = live.changed() => {}
                () = shutdown.wait() => return,
            }
            let result = match state.as_mut() {
                None => self.start().await.map(|progress| {
                    state = Some((progress, Instant::now()));
                }),
                Some((progress, rescanned)) => {
                    let now = self.store.switches();
                    if now != switches {
                        // Another node: whatever happened while this instance was between
                        // nodes (claims given back by a dead node, rows it never saw) is read
                        // afresh, and every waiter tries again.
                        tracing::info!("database node changed; rescanning the unread rows");
                        let rescan = self.rescan().await;
                        if rescan.is_ok() {
                            switches = now;
                            *rescanned = Instant::now();
                            self.hub.notify_all();
                        }
                        rescan.and(self.tick(progress, rescanned).await)
                    } else {
                        self.tick(progress, rescanned).await
                    }
                }
            };
            match result {
                Ok(()) => {
                    self.hub.mark_pass();
                    if !healthy {
                        tracing::info!("msg readable again");
                    }
                    healthy = true;
                    pause = self.pace.interval;
                }
                Err(err) => {
                    if healthy {
                        tracing::warn!(%err, "cannot read msg; waiting requests stay parked");
                    }
                    healthy = false;
                    pause = (pause * 2).clamp(self.pace.interval, MAX_BACKOFF);
                }
            }
        }
    }

    /// How long to wait before the next tick unless woken; `None` until woken. While the binlog
    /// is followed (`pushed`) and no hole is awaited, only the rescan keeps a clock, and rows
    /// the binlog showed but the table did not yet (the binlog is written before the engine
    /// commits) are looked for again after `soon`, doubling up to the interval, where they are
    /// given up (deleted, or the table emptied). Otherwise the interval's `pause`.
    fn time_to_tick(
        &self,
        state: Option<&(Progress, Instant)>,
        pushed: bool,
        pause: Duration,
        soon: &mut Duration,
    ) -> Option<Duration> {
        let Some((progress, rescanned)) = state.filter(|(progress, _)| !progress.has_holes())
        else {
            return Some(pause);
        };
        let expected = self.feed.expected();
        if !pushed || expected <= progress.high() {
            *soon = MIN_LOOK_AGAIN;
            if !pushed {
                return Some(pause);
            }
            return self
                .pace
                .rescan
                .map(|every| every.saturating_sub(rescanned.elapsed()));
        }
        if *soon >= self.pace.interval {
            self.feed.settle(expected, progress.high());
        }
        let wait = *soon;
        *soon = (*soon * 2).min(self.pace.interval);
        Some(wait)
    }

    /// The one full scan: every unread row into the index, and the end of the table as the mark.
    async fn start(&self) -> Result<Progress, crate::Error> {
        self.meters.watcher_query();
        if let Err(err) = self.store.detect_engine().await {
            tracing::warn!(%err, "could not read the table's engine; assuming InnoDB");
        }
        self.meters.watcher_query();
        self.learn_collation().await?;
        self.meters.watcher_query();
        let high = self
            .store
            .rows_after(u64::MAX, 1)
            .await?
            .last()
            .map_or(0, |newest| newest.mid);
        self.meters.watcher_query();
        let recent = self
            .store
            .rows_after(high.saturating_sub(STARTUP_WINDOW), STARTUP_WINDOW + 1)
            .await?;
        let known: Vec<u64> = recent
            .iter()
            .map(|row| row.mid)
            .filter(|&mid| mid <= high)
            .collect();
        self.rescan().await?;
        tracing::info!(
            end = high,
            unread = self.inbox.unread_count(),
            "watching msg"
        );
        self.hub.mark_watching();
        self.inbox.known_up_to(high);
        Ok(Progress::starting_at(high, &known, Instant::now()))
    }

    /// Keys recipients as `msg.rec`'s collation compares them, before the scan fills the index;
    /// waiters parked under the provisional keys file themselves again.
    async fn learn_collation(&self) -> Result<(), crate::Error> {
        let Some(weights) = self.store.rec_weights().await? else {
            return Ok(());
        };
        let name = weights.name.clone();
        if self.hub.collation().learn(weights) {
            tracing::info!(collation = %name, "recipients compare as msg.rec does");
            self.hub.notify_all();
        }
        Ok(())
    }

    async fn tick(
        &self,
        progress: &mut Progress,
        rescanned: &mut Instant,
    ) -> Result<(), crate::Error> {
        self.meters.watcher_tick();
        loop {
            self.meters.watcher_query();
            let rows = self.store.rows_after(progress.high(), PAGE).await?;
            if let Some(newest) = rows.last().filter(|newest| newest.mid < progress.high()) {
                // The newest id is below the mark: the table was emptied or recreated
                // (TRUNCATE resets AUTO_INCREMENT). Everything known is void.
                tracing::info!(
                    end = newest.mid,
                    "msg was truncated; watching it from its newest row"
                );
                *progress = Progress::starting_at(newest.mid, &[], Instant::now());
                self.rescan().await?;
                self.inbox.known_up_to(newest.mid);
                *rescanned = Instant::now();
                self.hub.notify_all();
                return Ok(());
            }
            let new_rows = rows.iter().filter(|row| row.mid > progress.high()).count();
            self.take_in(progress, &rows);
            self.inbox.known_up_to(progress.high());
            if (new_rows as u64) < PAGE {
                break;
            }
        }
        let due = progress.holes_due(Instant::now(), self.pace.grace, self.pace.interval);
        if !due.is_empty() {
            self.meters.watcher_query();
            let found = self.store.rows_among(&due).await?;
            self.take_in(progress, &found);
        }
        if self
            .pace
            .rescan
            .is_some_and(|every| rescanned.elapsed() >= every)
        {
            self.rescan().await?;
            *rescanned = Instant::now();
        }
        Ok(())
    }

    fn take_in(&self, progress: &mut Progress, rows: &[RecentRow]) {
        for row in progress.observe(rows, Instant::now()) {
            self.inbox.add(row.mid, &row.recipient);
            self.hub.notify(&row.recipient);
        }
    }

    /// Replaces the index with a scan of the unread rows, waking whoever gained one.
    async fn rescan(&self) -> Result<(), crate::Error> {
        self.inbox.begin_rescan();
        self.meters.watcher_query();
        match self.store.unread().await {
            Ok(rows) => {
                for recipient in self.inbox.finish_rescan(rows) {
                    self.hub.notify(&recipient);
                }
                Ok(())
            }
            Err(err) => {
                self.inbox.cancel_rescan();
                Err(err)
            }
        }
    }
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
    const TICK: Duration = Duration::from_millis(200);

    fn mids(rows: Vec<&RecentRow>) -> Vec<u64> {
        rows.into_iter().map(|row| row.mid).collect()
    }

    #[test]
    fn each_unread_row_is_fresh_once() {
        let now = Instant::now();
        let mut progress = Progress::starting_at(0, &[], now);
        let rows = [row(1, "a", false), row(2, "b", true)];
        assert_eq!(mids(progress.observe(&rows, now)), vec![1]);
        assert!(progress.observe(&rows, now).is_empty());
        assert_eq!(progress.high(), 2);
    }

    #[test]
    fn a_late_commit_below_a_newer_row_is_fresh_when_it_appears() {
        let now = Instant::now();
        let mut progress = Progress::starting_at(0, &[], now);
        progress.observe(&[row(1, "a", false), row(3, "c", false)], now);
        assert_eq!(progress.holes_due(now, GRACE, TICK), vec![2]);
        assert_eq!(mids(progress.observe(&[row(2, "b", false)], now)), vec![2]);
        assert_eq!(progress.hole_count(), 0);
    }

    #[test]
    fn holes_are_looked_up_on_a_doubling_schedule_and_dropped_after_their_grace() {
        let start = Instant::now();
        let mut progress = Progress::starting_at(10, &[10], start);
        progress.observe(&[row(12, "a", false)], start);
        assert_eq!(progress.holes_due(start, GRACE, TICK), vec![11]);
        assert!(progress.holes_due(start + TICK, GRACE, TICK).is_empty());
        assert_eq!(progress.holes_due(start + TICK * 2, GRACE, TICK), vec![11]);
        assert!(progress.holes_due(start + TICK * 5, GRACE, TICK).is_empty());
        assert_eq!(progress.holes_due(start + TICK * 6, GRACE, TICK), vec![11]);
        assert!(progress.holes_due(start + GRACE, GRACE, TICK).is_empty());
        assert_eq!(progress.hole_count(), 0);
    }

    #[test]
    fn ids_spaced_by_three_never_stall_new_rows() {
        let now = Instant::now();
        let mut progress = Progress::starting_at(0, &[], now);
        let burst: Vec<RecentRow> = (0..8_000).map(|i| row(1 + 3 * i, "other", false)).collect();
        assert_eq!(progress.observe(&burst, now).len(), 8_000);
        let next = [row(1 + 3 * 8_000, "customer", false)];
        assert_eq!(mids(progress.observe(&next, now)), vec![24_001]);
        assert!(progress.hole_count() <= MAX_HOLES);
    }

    #[test]
    fn holes_are_bounded_in_number_and_lookups_per_tick() {
        let now = Instant::now();
        let mut progress = Progress::starting_at(0, &[], now);
        progress.observe(&[row(1_000_000, "a", false)], now);
        assert_eq!(progress.hole_count(), MAX_HOLES);
        assert_eq!(
            progress.holes_due(now, GRACE, TICK).len(),
            HOLE_LOOKUPS_PER_TICK
        );
    }

    #[test]
    fn at_start_up_missing_ids_below_the_end_are_holes() {
        let now = Instant::now();
        let progress = Progress::starting_at(10, &[7, 8, 10], now);
        assert_eq!(progress.hole_count(), 1, "9 may still commit");
    }
}
