-- The sequencer vacuums system.pending_events every few thousand moved events (each leaves a dead
-- row, and autovacuum visits a database only about once a minute). Vacuum's last step, giving empty
-- pages at the end of the table back to the system, takes an ACCESS EXCLUSIVE lock: every write to a
-- tracked table queues its event here, so each such vacuum stalled all of them (230 ms measured).
-- The queue reuses its pages instead.
ALTER TABLE system.pending_events SET (vacuum_truncate = false);
