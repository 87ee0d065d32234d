-- Optional: makes "oldest unread message for this recipient" an index lookup instead of a
-- table scan. The server works without it; apply it when the table grows.
ALTER TABLE msg ADD INDEX msg_unread_by_rec (rec, isread, mid);
