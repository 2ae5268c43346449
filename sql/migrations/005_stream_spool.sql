-- 005 Store and forward (issue 14): what a grabber could not deliver yet, per camera and tick.
--
-- While the broker is unreachable a grabber (or the simulator) keeps its messages in a spool
-- (memory, then disk: streams/spool.py) and delivers them, oldest first, when the broker returns.
-- Its StreamStats say how much of this camera waits there (spooled_messages), how old the oldest
-- of it is (spool_oldest_age_s, NULL when nothing waits) and how many messages a spool bound
-- (bytes, age) has dropped since the grabber started (spool_dropped, a total like dropped_frames).
-- Rows written before this migration read 0 / NULL / 0.

ALTER TABLE stream_stats
    ADD COLUMN spooled_messages bigint NOT NULL DEFAULT 0 CHECK (spooled_messages >= 0),
    ADD COLUMN spool_oldest_age_s real CHECK (spool_oldest_age_s >= 0),
    ADD COLUMN spool_dropped bigint NOT NULL DEFAULT 0 CHECK (spool_dropped >= 0);
