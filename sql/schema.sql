-- The legacy `msg` table, as the legacy PHP implies it (the blog post's screenshot of it is lost).
--
-- Columns and their order are what `SELECT *` returns and therefore what `json_encode($row)` prints:
--   mid     the auto-increment id; AJsendmsg.php never sets it, the claim UPDATEs use it
--   rec     recipient username ('admin' for the agent, 'adminNNN' for a customer)
--   pos     sender username (the `username` cookie of whoever posted)
--   content the message text as PHP decoded it from the form body
--   isread  0 until a long poll or the agent stream claims the row, then 1
--
-- The server never creates or alters this table; it works with whatever columns, engine and
-- charset the operator's table has. utf8mb4 here so emoji survive; a legacy utf8 (utf8mb3)
-- table works too and refuses emoji exactly as it did under PHP.
CREATE TABLE IF NOT EXISTS msg (
  mid     INT UNSIGNED NOT NULL AUTO_INCREMENT,
  rec     VARCHAR(64)  NOT NULL DEFAULT '',
  pos     VARCHAR(64)  NOT NULL DEFAULT '',
  content TEXT,
  isread  TINYINT      NOT NULL DEFAULT 0,
  PRIMARY KEY (mid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
