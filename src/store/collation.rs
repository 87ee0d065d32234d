//! The recipient key: MariaDB's own comparison of `msg.rec`, learnt from MariaDB.
//!
//! The legacy matched recipients in SQL (`where rec='$rec'`), so the column's collation decides
//! whose a row is: under `utf8_general_ci` the rows for `ADMIN`, `Admin ` and `admín` are all
//! `admin`'s, while ` admin` and `admin2` are not. This server matches recipients in memory (the
//! unread index, the hub, the per-user limits), so it needs that very comparison. Rather than
//! transcribe MariaDB's tables (which differ per collation and per version), it asks MariaDB at
//! start-up for the weight of every character under the column's collation (`WEIGHT_STRING`),
//! after the same charset conversion a parameter goes through (a character the column cannot
//! hold becomes `?`, as MariaDB converts it), and keys a recipient by its characters' weights,
//! trailing spaces dropped under a PAD SPACE collation.
//!
//! That is exact for collations that weigh each character on its own: every `_general_ci` and
//! `_bin`, `latin1_swedish_ci`, and UCA collations outside the few languages with contractions
//! (Czech `ch`, Spanish `ll` in `_spanish2_`), which are not modelled. Until the weights are
//! learnt (the database was down at start), recipients fold as before: case and trailing spaces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// A code point and its weight, `None` where the column cannot hold it.
pub type Weighed = (u32, Option<Vec<u8>>);

/// The comparison recipients are keyed by; shared by the index, the hub and the limits.
#[derive(Debug, Default)]
pub struct Collation {
    learned: RwLock<Option<Arc<Weights>>>,
}

/// How one collation weighs characters, as MariaDB reported it.
#[derive(Debug, PartialEq, Eq)]
pub struct Weights {
    /// The collation's name (`utf8mb4_general_ci`), or `binary` for a byte column.
    pub name: String,
    kind: Kind,
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A binary column: bytes compare as they are.
    Bytes,
    /// A character column.
    Chars {
        pad_space: bool,
        /// The weight of every code point below U+10000.
        basic: Plane,
        /// Above it: one weight for all (the usual case), or each its own.
        astral: Astral,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Astral {
    /// The column's charset has no such characters (utf8mb3, latin1).
    None,
    Same(Vec<u8>),
    Each(Plane),
}

/// Weights of consecutive code points from `first`: the weight of `first + i` is
/// `bytes[end(i - 1)..end(i)]` (from 0 for `i` = 0), `None` where the column cannot hold it.
#[derive(Debug, PartialEq, Eq)]
struct Plane {
    first: u32,
    /// Where each weight ends, with [`CANNOT_HOLD`] set for a character the column cannot hold.
    ends: Vec<u32>,
    bytes: Vec<u8>,
}

const CANNOT_HOLD: u32 = 1 << 31;

impl Plane {
    fn from_rows(first: u32, rows: &[Weighed]) -> Plane {
        let mut plane = Plane {
            first,
            ends: Vec::with_capacity(rows.len()),
            bytes: Vec::new(),
        };
        for (_, weight) in rows {
            plane
                .bytes
                .extend_from_slice(weight.as_deref().unwrap_or_default());
            let end = to_u32(plane.bytes.len());
            plane.ends.push(match weight {
                Some(_) => end,
                None => end | CANNOT_HOLD,
            });
        }
        plane
    }

    /// `None` outside the plane; `Some(None)` for a character the column cannot hold.
    fn weight(&self, code: u32) -> Option<Option<&[u8]>> {
        let i = usize::try_from(code.checked_sub(self.first)?).ok()?;
        let end = *self.ends.get(i)?;
        let start = i
            .checked_sub(1)
            .map_or(0, |before| (self.ends[before] & !CANNOT_HOLD) as usize);
        Some((end & CANNOT_HOLD == 0).then(|| &self.bytes[start..(end & !CANNOT_HOLD) as usize]))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a plane's weights stay far below 4 GiB")
}

/// Keys of strings valid in the connection's charset (UTF-8) start with this byte, raw fallbacks
/// with another, so the two can never be equal.
const WEIGHED: u8 = 0;
const RAW: u8 = 1;

impl Weights {
    /// A binary column: no folding at all.
    pub fn bytes() -> Weights {
        Weights {
            name: "binary".into(),
            kind: Kind::Bytes,
        }
    }

    /// A character column's weights: `basic` holds `(code point, weight)` for every code point
    /// from 0 in order, `None` where the column cannot hold it; `astral`, for those above U+FFFF,
    /// `None` when the column can hold none of them, the one weight when they all weigh the same,
    /// else their rows.
    pub fn chars(
        name: String,
        pad_space: bool,
        basic: &[Weighed],
        astral: Option<Result<Vec<u8>, Vec<Weighed>>>,
    ) -> Weights {
        let astral = match astral {
            None => Astral::None,
            Some(Ok(same)) => Astral::Same(same),
            Some(Err(rows)) => Astral::Each(Plane::from_rows(0x1_0000, &rows)),
        };
        Weights {
            name,
            kind: Kind::Chars {
                pad_space,
                basic: Plane::from_rows(0, basic),
                astral,
            },
        }
    }

    /// The key `recipient` (bytes in the connection's charset) is filed under: two recipients
    /// have equal keys exactly when the column's collation says they are equal.
    pub fn key(&self, recipient: &[u8]) -> Vec<u8> {
        let Kind::Chars {
            pad_space,
            basic,
            astral,
        } = &self.kind
        else {
            return recipient.to_vec();
        };
        let raw = || [&[RAW], recipient].concat();
        let Ok(text) = std::str::from_utf8(recipient) else {
            // Not text in the connection's charset: no stored row can be for it.
            return raw();
        };
        let weight = |c: char| match basic.weight(u32::from(c)) {
            Some(weight) => weight,
            None => match astral {
                Astral::None => None,
                Astral::Same(weight) => Some(&weight[..]),
                Astral::Each(plane) => plane.weight(u32::from(c)).flatten(),
            },
        };
        // A character the column cannot hold: MariaDB refuses to compare (`Illegal mix of
        // collations`), so no row is ever for it, and it matches only itself.
        let Some(mut weights) = text.chars().map(weight).collect::<Option<Vec<&[u8]>>>() else {
            return raw();
        };
        if *pad_space {
            // PAD SPACE compares as if the shorter side were padded with spaces, so trailing
            // characters that weigh what a space weighs (or nothing) do not count.
            let space = weight(' ').unwrap_or_default();
            while weights
                .last()
                .is_some_and(|last| last.is_empty() || *last == space)
            {
                weights.pop();
            }
        }
        let mut key = Vec::with_capacity(1 + weights.iter().map(|w| w.len()).sum::<usize>());
        key.push(WEIGHED);
        for weight in weights {
            key.extend_from_slice(weight);
        }
        key
    }
}

impl Collation {
    /// The key `recipient` is filed under.
    pub fn key(&self, recipient: &[u8]) -> Vec<u8> {
        match &*self.learned.read().unwrap_or_else(PoisonError::into_inner) {
            Some(weights) => weights.key(recipient),
            None => fallback_key(recipient),
        }
    }

    /// Takes MariaDB's weights; whether they changed the keys (every waiter must then file itself
    /// again under its new key).
    pub fn learn(&self, weights: Arc<Weights>) -> bool {
        let mut learned = self.learned.write().unwrap_or_else(PoisonError::into_inner);
        if learned.as_deref() == Some(&*weights) {
            return false;
        }
        *learned = Some(weights);
        true
    }
}

/// Weights already learnt in this process, by collation name: they depend on the server's
/// version only, and learning them costs a query over every code point.
static LEARNT: Mutex<Option<HashMap<String, Arc<Weights>>>> = Mutex::new(None);

/// The weights of `name` if this process learnt them already.
pub fn cached(name: &str) -> Option<Arc<Weights>> {
    let learnt = LEARNT.lock().unwrap_or_else(PoisonError::into_inner);
    learnt.as_ref()?.get(name).cloned()
}

/// Keeps `weights` for [`cached`].
pub fn remember(weights: Weights) -> Arc<Weights> {
    let weights = Arc::new(weights);
    LEARNT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(weights.name.clone(), Arc::clone(&weights));
    weights
}

/// Before MariaDB was asked: the usual `_ci` collations' case and trailing spaces, for ASCII and
/// for what Unicode's lower-casing folds (not accents).
pub fn fallback_key(recipient: &[u8]) -> Vec<u8> {
    let end = recipient
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |i| i + 1);
    let trimmed = &recipient[..end];
    let folded = match std::str::from_utf8(trimmed) {
        Ok(text) => text.to_lowercase().into_bytes(),
        Err(_) => trimmed.to_ascii_lowercase(),
    };
    [&[RAW], &folded[..]].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up collation: ASCII letters fold case, `í` weighs as `i`, space is 0x20.
    fn toy(pad_space: bool) -> Weights {
        let basic: Vec<(u32, Option<Vec<u8>>)> = (0u32..0x1_0000)
            .map(|code| {
                let folded = match char::from_u32(code) {
                    Some('í' | 'Í') => 'I',
                    Some(c) => c.to_ascii_uppercase(),
                    None => return (code, None),
                };
                (code, Some(u32::from(folded).to_be_bytes()[2..].to_vec()))
            })
            .collect();
        Weights::chars("toy".into(), pad_space, &basic, Some(Ok(vec![0xff, 0xfd])))
    }

    #[test]
    fn weights_fold_what_the_collation_folds() {
        let toy = toy(true);
        assert_eq!(toy.key(b"ADMIN"), toy.key(b"admin"));
        assert_eq!(toy.key("admín".as_bytes()), toy.key(b"admin"));
        assert_eq!(toy.key(b"Admin  "), toy.key(b"admin"), "PAD SPACE");
        assert_ne!(toy.key(b" admin"), toy.key(b"admin"));
        assert_ne!(toy.key(b"admin2"), toy.key(b"admin"));
        assert_eq!(
            toy.key("a😀".as_bytes()),
            toy.key("a😁".as_bytes()),
            "astral characters share one weight here"
        );
    }

    #[test]
    fn no_pad_collations_keep_trailing_spaces() {
        let toy = toy(false);
        assert_ne!(toy.key(b"admin "), toy.key(b"admin"));
    }

    #[test]
    fn bytes_that_are_not_text_match_only_themselves() {
        let toy = toy(true);
        assert_eq!(toy.key(b"\xffa"), toy.key(b"\xffa"));
        assert_ne!(toy.key(b"\xffa"), toy.key(b"\xffA"));
        assert_ne!(toy.key(b"\xff"), toy.key(b""));
    }

    #[test]
    fn until_learnt_case_and_trailing_spaces_fold() {
        let collation = Collation::default();
        assert_eq!(collation.key(b"Admin123  "), collation.key(b"admin123"));
        assert_ne!(collation.key(b" a"), collation.key(b"a"));
        assert!(collation.learn(Arc::new(toy(true))));
        assert!(!collation.learn(Arc::new(toy(true))), "the same weights");
        assert_eq!(collation.key("ADMÍN".as_bytes()), collation.key(b"admin"));
    }
}

/// The keys against MariaDB itself: random look-alike names stored in `msg` tables of each
/// charset and collation, and for random probes, the rows `rec = ?` finds must be exactly the
/// rows whose key equals the probe's.
#[cfg(test)]
mod against_mariadb {
    use std::time::Duration;

    use mysql_async::prelude::Queryable;

    use crate::store::Store;

    /// Characters the usual collations fold together, or nearly: case, accents, `ß`, ligatures,
    /// full width, spaces of several kinds, `?` (what an unstorable character becomes), emoji.
    const ALPHABET: &[&str] = &[
        "a", "A", "á", "Á", "à", "â", "ä", "å", "æ", "d", "D", "e", "É", "ë", "i", "I", "í", "Í",
        "ı", "İ", "n", "ñ", "Ñ", "o", "Ö", "ø", "œ", "s", "S", "ß", "ẞ", "y", "ÿ", "Ÿ", "1", "2",
        " ", "\t", "\u{a0}", "\u{3000}", "Ａ", "ａ", "ﬁ", "σ", "Σ", "ς", "?", "😀", "😁", "𝐀",
    ];

    fn name(rng: &mut fastrand::Rng) -> String {
        let mut name: String = (0..rng.usize(0..6))
            .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
            .collect();
        // Trailing spaces are what PAD SPACE is about: give them a fair share.
        name.push_str(&" ".repeat(rng.usize(0..3)));
        name
    }

    fn base_url() -> String {
        std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
    }

    async fn check(column: &str, seed: u64) {
        let base = base_url();
        let db = format!("chat_collation_{}_{seed}", std::process::id());
        let mut admin = mysql_async::Conn::from_url(&base)
            .await
            .unwrap_or_else(|err| panic!("MariaDB must be running at {base}: {err}"));
        admin
            .query_drop(format!(
                "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
                 CREATE TABLE {db}.msg (mid INT AUTO_INCREMENT PRIMARY KEY, rec {column}, \
                 pos VARCHAR(64), content TEXT, isread TINYINT NOT NULL DEFAULT 0)"
            ))
            .await
            .expect("table");
        let url = format!("{base}/{db}");
        let store = Store::new(&url, false, 2, Duration::from_secs(10)).expect("store");
        let weights = store
            .rec_weights()
            .await
            .expect("weights")
            .expect("a msg table");
        let mut conn = mysql_async::Conn::new(
            mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url).expect("url"))
                .init(vec!["SET NAMES utf8mb4"]),
        )
        .await
        .expect("conn");
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut stored: Vec<(u64, String)> = Vec::new();
        while stored.len() < 150 {
            let rec = name(&mut rng);
            // A column that cannot hold the name refuses it (strict mode), as it refused PHP.
            if conn
                .exec_drop("INSERT INTO msg (rec) VALUES (?)", (&rec,))
                .await
                .is_ok()
            {
                stored.push((conn.last_insert_id().expect("id"), rec));
            }
        }
        for _ in 0..150 {
            // Half the probes are stored names, so that matches are common.
            let probe = match rng.bool() {
                true => stored[rng.usize(..stored.len())].1.clone(),
                false => name(&mut rng),
            };
            // MariaDB refuses to compare with a name the column cannot hold: no row is for it.
            let found: Vec<u64> = match conn
                .exec("SELECT mid FROM msg WHERE rec = ? ORDER BY mid", (&probe,))
                .await
            {
                Err(mysql_async::Error::Server(err)) if err.code == 1267 => Vec::new(),
                found => found.expect("select"),
            };
            let key = weights.key(probe.as_bytes());
            let keyed: Vec<u64> = stored
                .iter()
                .filter(|(_, rec)| weights.key(rec.as_bytes()) == key)
                .map(|(mid, _)| *mid)
                .collect();
            let show = |mids: &[u64]| -> Vec<&str> {
                mids.iter()
                    .filter_map(|mid| stored.iter().find(|(m, _)| m == mid))
                    .map(|(_, rec)| rec.as_str())
                    .collect()
            };
            assert_eq!(
                show(&keyed),
                show(&found),
                "{column} (seed {seed}): rows for {probe:?}, by key and by MariaDB"
            );
        }
        store.close().await;
        admin
            .query_drop(format!("DROP DATABASE {db}"))
            .await
            .expect("drop");
    }

    #[tokio::test]
    async fn utf8_general_ci_as_mariadb_compares() {
        check("VARCHAR(64) CHARACTER SET utf8mb3", 1).await;
    }

    #[tokio::test]
    async fn utf8mb4_general_ci_as_mariadb_compares() {
        check("VARCHAR(64) CHARACTER SET utf8mb4", 2).await;
    }

    #[tokio::test]
    async fn latin1_swedish_ci_as_mariadb_compares() {
        check("VARCHAR(64) CHARACTER SET latin1", 3).await;
    }

    #[tokio::test]
    async fn other_collations_as_mariadb_compares() {
        for (seed, column) in [
            "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_nopad_ci",
            "VARCHAR(64) CHARACTER SET latin1 COLLATE latin1_german2_ci",
            "VARBINARY(64)",
        ]
        .into_iter()
        .enumerate()
        {
            check(column, 10 + seed as u64).await;
        }
    }
}
