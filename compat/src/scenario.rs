//! The scenario format (`compat/scenarios/*.json`): a table variant, its initial rows and an
//! ordered list of steps, run identically against the legacy PHP (to record) and against our
//! server (to replay). compat/README.md documents the format for people who write scenarios.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::CompatError;

/// The base `CREATE TABLE`, shared with the server's own schema so the variants cannot drift.
const BASE_SCHEMA: &str = include_str!("../../sql/schema.sql");

/// Default bound for "this request must still be waiting": long enough for the legacy's
/// `sleep(1)` loop to have looked at the table at least once more.
pub const DEFAULT_PENDING_MS: u64 = 1500;
/// Default bound for a response we expect to arrive (the legacy answers within ~1 s of a row).
pub const DEFAULT_AWAIT_MS: u64 = 8000;

/// One named scenario, as stored in `compat/scenarios/<name>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name; also the file stem of the scenario and of its recordings.
    pub name: String,
    /// What the scenario checks, in a sentence or two.
    pub description: String,
    /// The `msg` table the scenario starts from.
    #[serde(default)]
    pub table: TableVariant,
    /// Rows inserted (in order) before the first step; column name -> value.
    #[serde(default)]
    pub rows: Vec<BTreeMap<String, CellValue>>,
    /// What happens, in order.
    pub steps: Vec<Step>,
    /// Present when our server deliberately answers differently from the legacy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Deviation>,
}

/// Which `msg` table to create: the base schema with its charset, engine or columns varied.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableVariant {
    /// `utf8mb4` (the base schema) or `utf8` (MariaDB's utf8mb3, what most legacy tables are).
    #[serde(default = "default_charset")]
    pub charset: String,
    /// `InnoDB` (the base schema) or `MyISAM`.
    #[serde(default = "default_engine")]
    pub engine: String,
    /// Column definitions appended after the base columns, e.g. a timestamp.
    #[serde(default)]
    pub extra_columns: Vec<String>,
    /// Also apply the optional index from `sql/migrations/001_unread_index.sql`.
    #[serde(default)]
    pub unread_index: bool,
}

fn default_charset() -> String {
    "utf8mb4".to_owned()
}

fn default_engine() -> String {
    "InnoDB".to_owned()
}

impl Default for TableVariant {
    fn default() -> Self {
        TableVariant {
            charset: default_charset(),
            engine: default_engine(),
            extra_columns: Vec::new(),
            unread_index: false,
        }
    }
}

impl TableVariant {
    /// The statements that create this variant of `msg` (after `DROP TABLE IF EXISTS msg`).
    pub fn create_statements(&self) -> Result<Vec<String>, CompatError> {
        let create = base_create_table()?;
        let mut create =
            replace_once(&create, "ENGINE=InnoDB", &format!("ENGINE={}", self.engine))?;
        create = replace_once(
            &create,
            "CHARSET=utf8mb4",
            &format!("CHARSET={}", self.charset),
        )?;
        if !self.extra_columns.is_empty() {
            let extra: String = self
                .extra_columns
                .iter()
                .map(|c| format!("  {c},\n"))
                .collect();
            let at = create.find("  PRIMARY KEY").ok_or_else(|| {
                CompatError::Scenario("sql/schema.sql has no `  PRIMARY KEY` line".into())
            })?;
            create.insert_str(at, &extra);
        }
        let mut statements = vec![create];
        if self.unread_index {
            statements
                .push("ALTER TABLE msg ADD INDEX msg_unread_by_rec (rec, isread, mid)".to_owned());
        }
        Ok(statements)
    }
}

/// The `CREATE TABLE ... ;` statement of sql/schema.sql, without comments.
fn base_create_table() -> Result<String, CompatError> {
    let text: String = BASE_SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    let start = text
        .find("CREATE TABLE")
        .ok_or_else(|| CompatError::Scenario("sql/schema.sql has no CREATE TABLE".into()))?;
    let end = text[start..]
        .find(';')
        .ok_or_else(|| CompatError::Scenario("sql/schema.sql: CREATE TABLE has no `;`".into()))?;
    Ok(text[start..start + end].to_owned())
}

fn replace_once(haystack: &str, from: &str, to: &str) -> Result<String, CompatError> {
    if haystack.matches(from).count() != 1 {
        return Err(CompatError::Scenario(format!(
            "sql/schema.sql: expected exactly one `{from}` to derive table variants from"
        )));
    }
    Ok(haystack.replacen(from, to, 1))
}

/// A cell of an initial row (or of an intended final table): text, a number, NULL, or raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CellValue {
    /// SQL NULL.
    Null,
    /// Written as a JSON number for readability; stored as its decimal text.
    Int(i64),
    /// UTF-8 text.
    Text(String),
    /// Bytes that are not UTF-8, as `{"hex": "ff00"}`.
    Hex {
        /// Lower- or upper-case hex digits.
        hex: String,
    },
}

impl CellValue {
    /// The bytes MySQL should store (None for NULL).
    pub fn to_bytes(&self) -> Result<Option<Vec<u8>>, CompatError> {
        Ok(match self {
            CellValue::Null => None,
            CellValue::Int(i) => Some(i.to_string().into_bytes()),
            CellValue::Text(s) => Some(s.as_bytes().to_vec()),
            CellValue::Hex { hex } => Some(decode_hex(hex)?),
        })
    }

    /// The canonical form of bytes read back from MySQL: text when UTF-8, hex otherwise.
    pub fn from_bytes(bytes: Option<&[u8]>) -> CellValue {
        match bytes {
            None => CellValue::Null,
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => CellValue::Text(s.to_owned()),
                Err(_) => CellValue::Hex { hex: encode_hex(b) },
            },
        }
    }

    /// Same value, with numbers turned into the text MySQL's text protocol returns.
    pub fn canonical(&self) -> Result<CellValue, CompatError> {
        Ok(CellValue::from_bytes(self.to_bytes()?.as_deref()))
    }
}

/// One step of a scenario. Steps run strictly in order; `open` does not wait for an answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Send a request and wait (up to `timeout_ms`) for the complete response.
    Request(Request),
    /// Send a request and go on; later steps check on it by its `id`.
    Open(Request),
    /// Run one SQL statement as another writer (a second application, an operator).
    Sql(String),
    /// The opened request `id` must still have no response body after `ms` milliseconds.
    Pending {
        /// The `id` of an earlier `open`.
        id: String,
        /// How long to watch it (default [`DEFAULT_PENDING_MS`]).
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Wait (up to `ms`) for the complete response of the opened request `id`.
    Await {
        /// The `id` of an earlier `open`.
        id: String,
        /// Bound (default [`DEFAULT_AWAIT_MS`]).
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Read the streamed response of `id` until its body holds `messages` `</script>` tags in
    /// total; the recording keeps the body up to and including the last of them.
    Read {
        /// The `id` of an earlier `open`.
        id: String,
        /// Total number of `</script>` tags to wait for (counted from the start of the body).
        messages: usize,
        /// Bound (default [`DEFAULT_AWAIT_MS`]).
        #[serde(default)]
        ms: Option<u64>,
    },
}

/// An HTTP/1.1 request, sent byte-exactly as written (see compat/README.md for the few headers
/// the runner adds when they are missing).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Names the request in recordings and in later steps; unique within the scenario.
    pub id: String,
    /// Sent as written (case included).
    #[serde(default = "default_method")]
    pub method: String,
    /// Request target, e.g. `/AJsendmsg.php?x=1`.
    pub path: String,
    /// Header lines in order, as `[name, value]`.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body as UTF-8 text.
    #[serde(default)]
    pub body: Option<String>,
    /// Body as base64, for bytes that are not UTF-8.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// Bound for a `request` step (default [`DEFAULT_AWAIT_MS`]).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Keep only a digest of the response body (see [`body_digest`]): for third-party files
    /// such as jquery.js, whose text must not be committed in a recording.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digest_body: bool,
    /// Header lines sent after `headers` whose values are raw bytes, written as Latin-1 text:
    /// each character U+0000-U+00FF is sent as that one byte (`"é"` is the byte E9), for
    /// header bytes that are not UTF-8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latin1: Vec<(String, String)>,
}

fn default_method() -> String {
    "GET".to_owned()
}

impl Request {
    /// Every header line as sent: `headers`, then `latin1` as raw bytes.
    pub fn header_bytes(&self) -> Result<Vec<(String, Vec<u8>)>, CompatError> {
        let plain = self
            .headers
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_bytes().to_vec())));
        let raw = self.latin1.iter().map(|(n, v)| {
            let bytes = v.chars().map(u8::try_from).collect::<Result<Vec<u8>, _>>();
            bytes.map(|b| (n.clone(), b)).map_err(|_| {
                CompatError::Scenario(format!(
                    "request {}: latin1 header {n:?} holds a character past U+00FF",
                    self.id
                ))
            })
        });
        plain.chain(raw).collect()
    }

    /// The body bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>, CompatError> {
        match (&self.body, &self.body_base64) {
            (Some(_), Some(_)) => Err(CompatError::Scenario(format!(
                "request {}: give body or body_base64, not both",
                self.id
            ))),
            (Some(b), None) => Ok(b.as_bytes().to_vec()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| {
                    CompatError::Scenario(format!("request {}: body_base64: {e}", self.id))
                }),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// A deliberate difference: the legacy's answer stays in the recording for reference, and the
/// replay checks our server against what is stated here instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    /// Why we differ (security, data loss, ...).
    pub reason: String,
    /// Intended responses by request id; requests not listed must match the recording.
    #[serde(default)]
    pub responses: BTreeMap<String, IntendedResponse>,
    /// Intended results of `pending` checks, by request id (in order of the checks).
    #[serde(default)]
    pub pending: BTreeMap<String, Vec<bool>>,
    /// Requests our server should leave unanswered (the legacy answered them, e.g. through SQL
    /// injection).
    #[serde(default)]
    pub no_response: Vec<String>,
    /// The intended final table rows (column name -> value), when it differs from the recording.
    #[serde(default)]
    pub table: Option<Vec<BTreeMap<String, CellValue>>>,
}

/// What our server should answer where it deliberately differs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntendedResponse {
    /// HTTP status.
    pub status: u16,
    /// Body as UTF-8 text.
    #[serde(default)]
    pub body: Option<String>,
    /// Body as base64.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// Content-Type; defaults to the recorded one, or PHP's `text/html; charset=UTF-8` when
    /// the legacy never answered.
    #[serde(default)]
    pub content_type: Option<String>,
}

impl IntendedResponse {
    /// The body bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>, CompatError> {
        match (&self.body, &self.body_base64) {
            (Some(b), None) => Ok(b.as_bytes().to_vec()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| CompatError::Scenario(format!("deviation body_base64: {e}"))),
            (None, None) => Ok(Vec::new()),
            (Some(_), Some(_)) => Err(CompatError::Scenario(
                "deviation: body and body_base64 both given".into(),
            )),
        }
    }
}

impl Scenario {
    /// Reads and checks one scenario file.
    pub fn load(path: &Path) -> Result<Scenario, CompatError> {
        let text = std::fs::read_to_string(path).map_err(|e| CompatError::io(path, e))?;
        let scenario: Scenario = serde_json::from_str(&text)
            .map_err(|e| CompatError::Scenario(format!("{}: {e}", path.display())))?;
        scenario.validate()?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem != scenario.name {
            return Err(CompatError::Scenario(format!(
                "{}: name {:?} differs from the file name",
                path.display(),
                scenario.name
            )));
        }
        Ok(scenario)
    }

    /// Reads every `*.json` in `dir`, sorted by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, CompatError> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| CompatError::io(dir, e))? {
            let path = entry.map_err(|e| CompatError::io(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                paths.push(path);
            }
        }
        paths.sort();
        paths.iter().map(|p| Scenario::load(p)).collect()
    }

    /// Checks that ids are unique and every reference names an earlier `open`.
    pub fn validate(&self) -> Result<(), CompatError> {
        let mut requests: BTreeMap<&str, bool> = BTreeMap::new();
        let err = |m: String| Err(CompatError::Scenario(format!("{}: {m}", self.name)));
        for step in &self.steps {
            match step {
                Step::Request(r) | Step::Open(r) => {
                    r.body_bytes()?;
                    r.header_bytes()?;
                    let opened = matches!(step, Step::Open(_));
                    if requests.insert(&r.id, opened).is_some() {
                        return err(format!("request id {:?} used twice", r.id));
                    }
                }
                Step::Pending { id, .. } | Step::Await { id, .. } | Step::Read { id, .. } => {
                    if requests.get(id.as_str()) != Some(&true) {
                        return err(format!(
                            "step refers to {id:?}, which no earlier `open` created"
                        ));
                    }
                }
                Step::Sql(_) => {}
            }
        }
        if let Some(dev) = &self.deviation {
            for id in dev
                .responses
                .keys()
                .chain(dev.pending.keys())
                .chain(dev.no_response.iter())
            {
                if !requests.contains_key(id.as_str()) {
                    return err(format!("deviation names unknown request {id:?}"));
                }
            }
        }
        Ok(())
    }
}

/// `fnv1a64:<hex> length:<n>` of `bytes`: what a recording keeps of a `digest_body` response.
/// FNV-1a is not cryptographic; it only has to notice accidental differences.
pub fn body_digest(bytes: &[u8]) -> Vec<u8> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{hash:016x} length:{}", bytes.len()).into_bytes()
}

/// Lower-case hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Bytes of a hex string, either case.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, CompatError> {
    hex::decode(text).map_err(|err| CompatError::Scenario(format!("hex {text:?}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_change_only_engine_charset_and_columns() {
        let variant = TableVariant {
            charset: "utf8".into(),
            engine: "MyISAM".into(),
            extra_columns: vec!["created DATETIME NOT NULL DEFAULT '2012-01-01 10:00:00'".into()],
            unread_index: true,
        };
        let statements = variant
            .create_statements()
            .expect("schema.sql has the expected shape");
        let create = &statements[0];
        assert!(
            create.contains("ENGINE=MyISAM DEFAULT CHARSET=utf8"),
            "{create}"
        );
        assert!(!create.contains("utf8mb4"), "{create}");
        let extra = create
            .find("created DATETIME")
            .expect("extra column present");
        let isread = create.find("isread").expect("base column present");
        let pk = create.find("PRIMARY KEY").expect("primary key present");
        assert!(isread < extra && extra < pk, "{create}");
        assert_eq!(statements.len(), 2);
    }

    #[test]
    fn cells_round_trip_text_numbers_null_and_bytes() {
        assert_eq!(
            CellValue::Int(1).canonical().expect("int"),
            CellValue::Text("1".into())
        );
        assert_eq!(CellValue::from_bytes(None), CellValue::Null);
        assert_eq!(
            CellValue::from_bytes(Some(b"\xff\x00")),
            CellValue::Hex { hex: "ff00".into() }
        );
        assert_eq!(
            CellValue::from_bytes(Some("中".as_bytes())),
            CellValue::Text("中".into())
        );
    }

    #[test]
    fn body_digest_changes_with_any_byte() {
        assert_eq!(body_digest(b""), b"fnv1a64:cbf29ce484222325 length:0");
        assert_ne!(
            body_digest(b"jQuery v1.12.4"),
            body_digest(b"jQuery v1.12.5")
        );
    }

    #[test]
    fn steps_must_refer_to_an_earlier_open() {
        let text = r#"{"name":"x","description":"d","steps":[{"await":{"id":"p"}}]}"#;
        let scenario: Scenario = serde_json::from_str(text).expect("parses");
        assert!(scenario.validate().is_err());
    }
}
