//! Reading the table without claiming: the unread scan, new rows above a mark, rows by id.

use mysql_async::prelude::Queryable;

use super::sql::*;
use super::*;
use crate::error::Error;

/// A row the watcher saw: enough to know whom to wake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRow {
    /// The row's id.
    pub mid: u64,
    /// Its recipient (`NULL` reads as empty).
    pub recipient: Vec<u8>,
    /// Whether someone already claimed it.
    pub is_read: bool,
}

impl Store {
    /// Every unread row's id and recipient: one scan of the table.
    pub async fn unread(&self) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        // A large table takes a while to scan; this is not a request's deadline.
        let scan = async {
            let mut conn = self.current().pool.get_conn().await?;
            let rows = conn
                .query_map(UNREAD, |(mid, rec): (u64, Option<Vec<u8>>)| {
                    (mid, rec.unwrap_or_default())
                })
                .await?;
            Ok(rows)
        };
        let result = tokio::time::timeout(self.timeout * 20, scan)
            .await
            .unwrap_or(Err(Error::DbTimeout));
        if let Err(err) = &result {
            self.nodes.report(err);
        }
        result
    }

    /// Rows with `mid` above `after`, oldest first, at most `limit`; plus the newest row.
    pub async fn rows_after(&self, after: u64, limit: u64) -> Result<Vec<RecentRow>, Error> {
        self.bounded(async {
            let mut conn = self.current().pool.get_conn().await?;
            Ok(conn
                .exec_map(NEWER_THAN, (after, limit), recent_row)
                .await?)
        })
        .await
    }

    /// The rows among `mids` (ascending) that exist now: late commits filling holes.
    pub async fn rows_among(&self, mids: &[u64]) -> Result<Vec<RecentRow>, Error> {
        if mids.is_empty() {
            return Ok(Vec::new());
        }
        // Integers we hold, so they are safe to inline. Runs of ids become ranges: one index
        // dive each, however long the run (a bulk insert can leave thousands of ids unused).
        let ranges = id_ranges(mids)
            .into_iter()
            .map(|(first, last)| format!("mid BETWEEN {first} AND {last}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        self.bounded(async {
            let mut conn = self.current().pool.get_conn().await?;
            Ok(conn
                .query_map(
                    format!("SELECT mid, rec, isread FROM msg WHERE {ranges}"),
                    recent_row,
                )
                .await?)
        })
        .await
    }
}

/// Ascending ids as runs of consecutive ids, `(first, last)`.
fn id_ranges(mids: &[u64]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &mid in mids {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == mid => *last = mid,
            _ => ranges.push((mid, mid)),
        }
    }
    ranges
}

fn recent_row((mid, rec, isread): (u64, Option<Vec<u8>>, Option<i64>)) -> RecentRow {
    RecentRow {
        mid,
        recipient: rec.unwrap_or_default(),
        is_read: isread.unwrap_or(0) != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::id_ranges;

    #[test]
    fn runs_of_ids_become_ranges() {
        assert_eq!(id_ranges(&[2, 3, 5, 6, 7, 9]), vec![(2, 3), (5, 7), (9, 9)]);
        assert!(id_ranges(&[]).is_empty());
    }
}
