-- Event metadata for a change made in this transaction: the caller from the claims, the request id.
CREATE OR REPLACE FUNCTION system.change_metadata() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'actor', jsonb_build_object(
            'type', CASE auth.role() WHEN 'project_admin' THEN 'admin' WHEN 'authenticated' THEN 'user'
                                     WHEN 'anon' THEN 'anon' ELSE 'system' END,
            'id', auth.jwt()->>'sub'),
        'requestId', nullif(current_setting('request.id', true), ''),
        'correlationId', nullif(current_setting('request.id', true), '')))
$$;
