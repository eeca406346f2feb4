-- The enabled channel that `name` resolves to, among those the current role can see: an exact
-- pattern wins, then the most specific (most literal characters), then the first by pattern.
CREATE OR REPLACE FUNCTION realtime.resolve(p_name text) RETURNS SETOF realtime.channels LANGUAGE sql STABLE AS $$
    SELECT c.* FROM realtime.channels c
     WHERE c.enabled AND realtime.matches(c.pattern, p_name)
     ORDER BY c.pattern = p_name DESC, length(replace(c.pattern, '%', '')) DESC, c.pattern
     LIMIT 1
$$;
GRANT EXECUTE ON FUNCTION realtime.resolve(text) TO anon, authenticated, project_admin;
