-- Takes the log lock (held until the caller's transaction ends) and returns the head and each command's
-- stream version, exact under the lock. The versions are worked out before the lock, as of the head
-- then; under it, one scan of the positions since (OFFSET 0 keeps it on the primary key, not on every
-- version of the batch's streams) tells whether any of the batch's streams moved, and only then are
-- they worked out again. Runs inside append_batch, whose settings apply.
CREATE OR REPLACE FUNCTION system.lock_log_for(p_streams text[], p_known_versions bigint[], p_known_as_of bigint[],
                                    OUT start_head bigint, OUT versions bigint[], OUT known int)
LANGUAGE plpgsql AS $$
DECLARE
    checked bigint;
BEGIN
    SELECT coalesce(max(ev.position), 0) INTO checked FROM system.events ev;
    SELECT s.versions, s.known INTO versions, known
      FROM system.stream_versions(p_streams, p_known_versions, p_known_as_of, checked) s;

    PERFORM system.lock_log();
    SELECT coalesce(max(ev.position), 0) INTO start_head FROM system.events ev;
    IF start_head > checked AND EXISTS (SELECT 1 FROM (SELECT ev.stream_id FROM system.events ev WHERE ev.position > checked OFFSET 0) x
                                         WHERE x.stream_id = ANY (p_streams)) THEN
        SELECT s.versions, s.known INTO versions, known
          FROM system.stream_versions(p_streams, p_known_versions, p_known_as_of, start_head) s;
    END IF;
END $$;
