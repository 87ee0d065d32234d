//! What the operator's table is like: its engine (can a claim roll back?), its auto-increment
//! mode (can a batch's ids be known?), and how it compares `rec` ([`super::collation`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mysql_async::prelude::Queryable;

use super::collation::{self, Weights};
use super::sql::*;
use super::*;
use crate::error::Error;

impl Store {
    /// Learns the table's engine (once the database answers). Until then claims assume InnoDB.
    pub async fn detect_engine(&self) -> Result<(), Error> {
        let engine: Option<String> = self
            .bounded(async {
                let mut conn = self.current().pool.get_conn().await?;
                Ok(conn.query_first(ENGINE).await?)
            })
            .await?;
        let transactional = !engine.as_deref().is_some_and(|engine| {
            engine.eq_ignore_ascii_case("MyISAM")
                || engine.eq_ignore_ascii_case("MEMORY")
                || engine.eq_ignore_ascii_case("ARIA")
        });
        if !transactional {
            tracing::warn!(
                ?engine,
                "msg is not transactional: a crash mid-delivery can lose the messages in flight"
            );
        }
        self.transactional.store(transactional, Ordering::Relaxed);
        let mode: Option<u64> = self
            .bounded(async {
                let mut conn = self.current().pool.get_conn().await?;
                Ok(conn.query_first(AUTOINC_MODE).await?)
            })
            .await?;
        self.batches.store(
            transactional && mode.is_some_and(|mode| mode < 2),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// How MariaDB compares `msg.rec` ([`crate::store::collation`]): the column's collation, asked for
    /// the weight of every character; `None` while there is no `msg` table to ask about.
    pub async fn rec_weights(&self) -> Result<Option<Arc<Weights>>, Error> {
        let found: Option<(Option<String>, Option<String>)> = self
            .bounded(async {
                let mut conn = self.current().pool.get_conn().await?;
                Ok(conn.query_first(REC_COLLATION).await?)
            })
            .await?;
        let Some((charset, collation)) = found else {
            return Ok(None);
        };
        let (Some(charset), Some(collation)) = (charset, collation) else {
            return Ok(Some(Arc::new(Weights::bytes())));
        };
        let is_name = |name: &str| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !is_name(&charset) || !is_name(&collation) {
            return Err(Error::Config(format!(
                "msg.rec has an unexpected collation name {collation:?}"
            )));
        }
        if let Some(known) = collation::cached(&collation) {
            return Ok(Some(known));
        }
        // Every code point once: a scan of numbers, not of the table, but not a request's query.
        let learn = async {
            let mut conn = self.current().pool.get_conn().await?;
            let weigh = format!(
                "WEIGHT_STRING(CONVERT(CHAR(n USING utf32) USING {charset}) COLLATE {collation})"
            );
            let pad_space: Option<bool> = conn
                .query_first(format!(
                    "SELECT CONVERT('a' USING {charset}) COLLATE {collation} = CONVERT('a ' USING {charset})"
                ))
                .await?;
            // A character the column cannot hold converts to `?`, and back it is not itself.
            let weighed = |numbers: String| {
                format!(
                    "SELECT n, IF(CONVERT(CONVERT(CHAR(n USING utf32) USING {charset}) USING utf32) \
                     = CHAR(n USING utf32), {weigh}, NULL) FROM ({numbers}) t ORDER BY n"
                )
            };
            let basic: Vec<(u32, Option<Vec<u8>>)> = conn.query(weighed(numbers(0, 4))).await?;
            let holds_astral: Option<bool> = conn
                .query_first(format!(
                    "SELECT CONVERT(CONVERT(CHAR(128512 USING utf32) USING {charset}) USING utf32) = CHAR(128512 USING utf32)"
                ))
                .await?;
            let astral = match holds_astral.unwrap_or(false) {
                false => None,
                true => {
                    let astral = numbers(0x1_0000, 5);
                    let (distinct, same): (u64, Option<Vec<u8>>) = conn
                        .query_first(format!(
                            "SELECT COUNT(DISTINCT w), MIN(w) FROM (SELECT {weigh} w FROM ({astral}) t) w"
                        ))
                        .await?
                        .unwrap_or_default();
                    Some(match (distinct, same) {
                        (1, Some(same)) => Ok(same),
                        _ => Err(conn.query(weighed(astral)).await?),
                    })
                }
            };
            Ok::<_, Error>(Weights::chars(
                collation.clone(),
                pad_space.unwrap_or(true),
                &basic,
                astral,
            ))
        };
        let weights = tokio::time::timeout(self.timeout * 20, learn)
            .await
            .unwrap_or(Err(Error::DbTimeout))?;
        Ok(Some(collation::remember(weights)))
    }
}
