-- `updated_at` maintenance for tables made by the tables API.
CREATE OR REPLACE FUNCTION system.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
