-- The records of structure-access in PostgreSQL: applications, access keys,
-- devices, and the change log every broker follows.
--
-- Applied by `structure-keys schema` (idempotent: every statement can run
-- again). A key stores its verifier, never its secret. Every insert, update
-- or delete of a key or a device writes, in the same transaction, one row of
-- `structure_access_changes` per record it touches, and notifies the channel
-- `structure_access_changes` with the row's position: no change can be made
-- without its entry. Writers of the two tables are serialised by a
-- transaction-level advisory lock taken by the trigger, so that positions
-- are assigned in commit order and a follower that has seen position N has
-- seen every change before it.

CREATE TABLE IF NOT EXISTS structure_access_applications (
    application text PRIMARY KEY
        CHECK (application ~ '^[0-9A-Za-z_-]{1,64}$')
);

CREATE TABLE IF NOT EXISTS structure_access_keys (
    key_id text PRIMARY KEY,
    application text NOT NULL REFERENCES structure_access_applications (application),
    -- A PHC string: `$hmac-sha256$v=1$…` or `$argon2id$v=19$…`.
    verifier text NOT NULL,
    -- The restriction in its canonical text; NULL: unrestricted.
    restriction text,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    description text NOT NULL DEFAULT '',
    -- The key's additional topics, as the record's JSON has them
    -- ({"filterType": …, "pubTopics": […], "subTopics": […]}); NULL: none.
    additional_topics jsonb,
    -- From this time on the key authenticates nobody and its sessions are
    -- ended; NULL: never. (Read to the second, fractions dropped.)
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Databases made before keys could expire.
ALTER TABLE structure_access_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz;

CREATE INDEX IF NOT EXISTS structure_access_keys_by_application
    ON structure_access_keys (application);

CREATE TABLE IF NOT EXISTS structure_access_devices (
    device_id text PRIMARY KEY,
    application text NOT NULL REFERENCES structure_access_applications (application),
    -- [{"key": …, "value": …}, …]
    tags jsonb NOT NULL DEFAULT '[]'
);

CREATE INDEX IF NOT EXISTS structure_access_devices_by_application
    ON structure_access_devices (application);

CREATE TABLE IF NOT EXISTS structure_access_changes (
    position bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('key', 'device')),
    id text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One log row for what `old_id` names (UPDATE, DELETE), one for what
-- `new_id` names (INSERT, or an UPDATE that changed the id), then NOTIFY.
CREATE OR REPLACE FUNCTION structure_access_log(what text, old_id text, new_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    position bigint;
BEGIN
    -- Commit order = position order (see the top of this file).
    PERFORM pg_advisory_xact_lock(7370416319);
    IF old_id IS NOT NULL THEN
        INSERT INTO structure_access_changes (kind, id) VALUES (what, old_id)
        RETURNING structure_access_changes.position INTO position;
    END IF;
    IF new_id IS NOT NULL AND new_id IS DISTINCT FROM old_id THEN
        INSERT INTO structure_access_changes (kind, id) VALUES (what, new_id)
        RETURNING structure_access_changes.position INTO position;
    END IF;
    PERFORM pg_notify('structure_access_changes', position::text);
END
$$;

CREATE OR REPLACE FUNCTION structure_access_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM structure_access_log('key',
        CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.key_id END,
        CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.key_id END);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION structure_access_device_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM structure_access_log('device',
        CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.device_id END,
        CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.device_id END);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS structure_access_keys_changed ON structure_access_keys;
CREATE TRIGGER structure_access_keys_changed
    AFTER INSERT OR UPDATE OR DELETE ON structure_access_keys
    FOR EACH ROW EXECUTE FUNCTION structure_access_key_changed();

DROP TRIGGER IF EXISTS structure_access_devices_changed ON structure_access_devices;
CREATE TRIGGER structure_access_devices_changed
    AFTER INSERT OR UPDATE OR DELETE ON structure_access_devices
    FOR EACH ROW EXECUTE FUNCTION structure_access_device_changed();

-- Truncating either table would change records without a log entry.
CREATE OR REPLACE FUNCTION structure_access_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE of % is refused: delete the rows, so that every broker sees it', TG_TABLE_NAME;
END
$$;

DROP TRIGGER IF EXISTS structure_access_keys_no_truncate ON structure_access_keys;
CREATE TRIGGER structure_access_keys_no_truncate
    BEFORE TRUNCATE ON structure_access_keys
    FOR EACH STATEMENT EXECUTE FUNCTION structure_access_refuse_truncate();

DROP TRIGGER IF EXISTS structure_access_devices_no_truncate ON structure_access_devices;
CREATE TRIGGER structure_access_devices_no_truncate
    BEFORE TRUNCATE ON structure_access_devices
    FOR EACH STATEMENT EXECUTE FUNCTION structure_access_refuse_truncate();
