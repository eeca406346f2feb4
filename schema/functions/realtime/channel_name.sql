-- The channel being checked, for policies (set by the server for subscribe and publish checks).
CREATE OR REPLACE FUNCTION realtime.channel_name() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('realtime.channel_name', true), '')
$$;
GRANT EXECUTE ON FUNCTION realtime.channel_name() TO anon, authenticated, project_admin;
