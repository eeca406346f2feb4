-- The version of each stream before a batch, as of log head p_head: a known version (p_known_versions[i],
-- exact at head p_known_as_of[i]) unless its stream was appended to after that head (one range scan of
-- the positions since the oldest such head, all committed), else looked up (index only). Known versions
-- read more than 10,000 positions ago are not worth the scan. `known` counts the versions taken as known.
--
-- A SQL function returning a table, one SELECT, STABLE, without SET clauses: the planner inlines it
-- into the caller's query (system.lock_log_for), so a batch pays for no function call of its own.
CREATE OR REPLACE FUNCTION system.stream_versions(p_streams text[], p_known_versions bigint[], p_known_as_of bigint[], p_head bigint)
RETURNS TABLE (versions bigint[], known int) LANGUAGE sql STABLE ROWS 1 AS $$
    WITH oldest AS (
        SELECT min(k.h) AS known_at FROM unnest(p_known_versions, p_known_as_of) AS k(v, h)
         WHERE k.v >= 0 AND k.h BETWEEN p_head - 10000 AND p_head
    ), streams AS (
        SELECT u.s, u.kv, u.ord, u.kv >= 0 AND u.kh >= oldest.known_at AND u.kh <= p_head AND coalesce(t.last, 0) <= u.kh AS is_known
          FROM oldest CROSS JOIN unnest(p_streams, p_known_versions, p_known_as_of) WITH ORDINALITY AS u(s, kv, kh, ord)
          LEFT JOIN (SELECT ev.stream_id, max(ev.position) AS last FROM system.events ev
                      WHERE ev.position > (SELECT known_at FROM oldest) AND ev.position <= p_head GROUP BY ev.stream_id) t
            ON t.stream_id = u.s
    )
    SELECT array_agg(CASE WHEN s.is_known THEN s.kv
                          ELSE coalesce((SELECT max(ev.stream_version) FROM system.events ev WHERE ev.stream_id = s.s), 0) END
                     ORDER BY s.ord),
           (count(*) FILTER (WHERE s.is_known))::int
      FROM streams s
$$;
