//! Every SQL statement the server sends, each with the reason for its shape. Nothing
//! user-controlled is ever formatted into them: values go as parameters, and the few statements
//! built here inline only integers the server holds.

/// Locks unread rows for a claim and reads them whole, as the legacy's `select *` saw them
/// (before its UPDATE), oldest first. `mids` are integers we hold, so nothing user-controlled
/// enters this SQL; the text protocol formats every value exactly as mysql_fetch_assoc saw it
/// (dates, decimals, floats).
pub(super) fn lock_unread(mids: &str) -> String {
    format!("SELECT * FROM msg WHERE mid IN ({mids}) AND isread = 0 ORDER BY mid FOR UPDATE")
}
/// [`lock_unread`] on a Galera node, once the node has applied everything the cluster ordered
/// before it (`wsrep_sync_wait`): another node's claim of these rows, certified but not yet
/// applied here, is then a lock this read waits for (and then sees the rows read), not rows it
/// reads as unread.
pub(super) fn lock_unread_synced(mids: &str) -> String {
    format!(
        "SET STATEMENT wsrep_sync_wait = 1 FOR {}",
        lock_unread(mids)
    )
}
/// Conditional, so two claimants (two tabs, two instances, a MyISAM table without row locks)
/// never both win one row.
pub(super) fn claim_rows(mids: &str) -> String {
    format!("UPDATE msg SET isread = 1 WHERE mid IN ({mids}) AND isread = 0")
}
/// Flags one row read outside a claim (settling one whose COMMIT went unanswered).
pub(super) const CLAIM: &str = "UPDATE msg SET isread = 1 WHERE mid = ? AND isread = 0";
/// Whether row `mid` is read: how a Galera claim whose COMMIT went unanswered (its node died)
/// learns its fate. The claim's write set either reached the group before the node died, and then
/// every survivor commits it, or it never exists for them; `wsrep_sync_wait` makes the read wait
/// until this node has applied everything the cluster ordered before it, which cannot happen
/// until the dead node is evicted (the cluster stalls until then). A missing row reads as unread
/// (nothing to hand over).
pub(super) fn claim_outcome(mid: u64) -> String {
    format!("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT isread FROM msg WHERE mid = {mid} LOCK IN SHARE MODE")
}
/// Gives back a claimed row whose hand-over failed, where no transaction can do it for us.
pub(super) const RELEASE: &str = "UPDATE msg SET isread = 0 WHERE mid = ? AND isread = 1";
pub(super) const INSERT: &str = "INSERT INTO msg (rec, pos, content) VALUES (?, ?, ?)";
/// [`INSERT`] for `rows` messages at once: one statement, one commit.
pub(super) fn insert_many(rows: usize) -> String {
    let mut sql = String::from(INSERT);
    for _ in 1..rows {
        sql.push_str(", (?, ?, ?)");
    }
    sql
}
/// The spacing of the ids one multi-row INSERT takes (1 unless multi-master).
pub(super) const ID_STEP: &str = "SELECT @@auto_increment_increment";
/// Whether a multi-row INSERT takes evenly spaced ids: not under the interleaved mode 2 (which
/// Galera requires), where concurrent inserts may take ids in between.
pub(super) const AUTOINC_MODE: &str = "SELECT @@innodb_autoinc_lock_mode";
/// Whether our row exists: how a send whose COMMIT went unanswered learns whether it was stored.
/// The id alone does not say it: when a Galera node leaves, the others recompute their
/// auto-increment offsets and may hand the id our dead node gave us to another message.
pub(super) const EXISTS: &str =
    "SELECT COUNT(*) FROM msg WHERE mid = ? AND rec = ? AND pos = ? AND content = ?";
/// [`EXISTS`] on a Galera node, after the node has applied every write committed anywhere before
/// it (another node may have committed the insert just before ours went away).
pub(super) const EXISTS_SYNCED: &str = "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT COUNT(*) FROM msg WHERE mid = ? AND rec = ? AND pos = ? AND content = ?";
/// Every unread row: the one scan of the table, at start-up and on resync. `rec` and `isread`
/// have no index on the operator's table, so every other lookup goes by primary key.
pub(super) const UNREAD: &str = "SELECT mid, rec FROM msg WHERE isread = 0";
/// New rows above a mark. Also returns the newest row even when it is not newer, so the watcher
/// notices ids going backwards (TRUNCATE) without a second query.
pub(super) const NEWER_THAN: &str =
    "SELECT mid, rec, isread FROM msg WHERE mid > ? OR mid = (SELECT MAX(mid) FROM msg) ORDER BY mid LIMIT ?";
/// The charset and collation `rec = ?` compares with (both NULL for a binary column).
pub(super) const REC_COLLATION: &str = "SELECT CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'msg' AND COLUMN_NAME = 'rec'";

/// `SELECT … n` for the `16^digits` integers from `first`, in any MySQL or MariaDB (no sequence
/// engine, no recursion limit): a cross join of one sixteen-row table per hexadecimal digit.
pub(super) fn numbers(first: u32, digits: u32) -> String {
    let sixteen = (1..16).fold("SELECT 0 d".to_owned(), |sql, d| {
        sql + &format!(" UNION ALL SELECT {d}")
    });
    let terms: Vec<String> = (0..digits)
        .map(|i| format!("{}*h{i}.d", 16u64.pow(i)))
        .collect();
    let tables: Vec<String> = (0..digits).map(|i| format!("({sixteen}) h{i}")).collect();
    format!(
        "SELECT {first} + {} AS n FROM {}",
        terms.join(" + "),
        tables.join(" CROSS JOIN ")
    )
}

/// Whether the table can roll a claim back (InnoDB) or not (MyISAM).
pub(super) const ENGINE: &str = "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'msg'";
/// Lock waits end in an error well before `--db-timeout-ms` would cut the connection, so a row
/// locked by someone else costs one clean error, not a broken connection.
pub(super) const LOCK_WAIT: &str = "SET SESSION innodb_lock_wait_timeout = 1";

/// Opens a claim's transaction in the same round trip as its first statements: mysql_async's
/// `start_transaction` is a round trip of its own, and the database's cost of a claim is mostly
/// waking its thread once per round trip (a 5,000-poll burst profiled so).
pub(super) const BEGIN: &str = "START TRANSACTION";
