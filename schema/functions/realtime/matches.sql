-- Whether channel `name` matches `pattern`: `%` is the only wildcard (`_` and `\` are literal).
CREATE OR REPLACE FUNCTION realtime.matches(pattern text, name text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT pattern = name OR name LIKE replace(replace(pattern, '\', '\\'), '_', '\_')
$$;
GRANT EXECUTE ON FUNCTION realtime.matches(text, text) TO anon, authenticated, project_admin;
