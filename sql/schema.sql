-- filegc: tables and settings.
--
-- This file is shared by every engine: the extension includes it as it is.
-- The extension's control file creates the schema `filegc`.

-- The role the sweeper logs in as (or is granted to). It gets exactly the
-- functions the sweeper calls and nothing of the application's tables.
-- Roles are shared by all databases of a cluster, so another database may
-- be creating the same role right now.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'filegc_sweeper') THEN
        CREATE ROLE filegc_sweeper NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
COMMENT ON ROLE filegc_sweeper IS 'The role of the filegc sweeper: grant it to the login role the sweeper uses';
GRANT USAGE ON SCHEMA filegc TO filegc_sweeper;

------------------------------------------------------------------------------
-- Settings
--
-- Defaults belong to the extension; overrides belong to the operator. Keeping
-- them apart lets pg_dump save only the overrides (a dumped default would
-- collide with the row CREATE EXTENSION writes on restore).
------------------------------------------------------------------------------

CREATE TABLE filegc.setting_defaults (
    name text PRIMARY KEY,
    default_value text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('interval', 'fraction', 'percent', 'integer', 'text')),
    description text NOT NULL
);
COMMENT ON TABLE filegc.setting_defaults IS 'Every filegc setting with its default and its kind (owned by the extension)';

CREATE TABLE filegc.setting_overrides (
    name text PRIMARY KEY,
    value text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE filegc.setting_overrides IS 'Settings the operator changed; change them through the view filegc.settings';

INSERT INTO filegc.setting_defaults (name, default_value, kind, description) VALUES
    ('unreferenced_delay', '10 minutes', 'interval',
     'How long a file that lost its last reference waits before the sweeper may delete it'),
    ('orphan_min_age', '1 hour', 'interval',
     'A file on disk that no row references is an eligible orphan only when both its first sighting and its mtime are older than this'),
    ('trash_retention', '24 hours', 'interval',
     'How long a deleted file stays in .filegc-trash/ on the volume, restorable, before it is unlinked'),
    ('max_delete_fraction', '0.25', 'fraction',
     'Circuit breaker: a cleanup that would schedule more than this fraction of the files in the latest scan is refused unless forced'),
    ('alert_warning_pct', '80', 'percent', 'Volume use (percent) at which the alert level becomes warning'),
    ('alert_critical_pct', '90', 'percent', 'Volume use (percent) at which the alert level becomes critical'),
    ('alert_emergency_pct', '95', 'percent', 'Volume use (percent) at which the alert level becomes emergency'),
    ('lease', '5 minutes', 'interval',
     'How long a sweeper owns a claimed tombstone; after that another sweeper may claim it again'),
    ('max_attempts', '5', 'integer',
     'A tombstone whose deletion failed this many times becomes failed and is left for the operator');

CREATE VIEW filegc.settings AS
SELECT d.name,
       coalesce(o.value, d.default_value) AS value,
       d.description,
       d.default_value,
       d.kind,
       o.changed_at,
       o.changed_by
  FROM filegc.setting_defaults d
  LEFT JOIN filegc.setting_overrides o USING (name);
COMMENT ON VIEW filegc.settings IS
    'filegc settings: UPDATE filegc.settings SET value = ... WHERE name = ... changes one, DELETE resets it to its default';

-- Returns the value of a setting, raising a clear error for an unknown name.
CREATE FUNCTION filegc.setting(setting_name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result text;
BEGIN
    SELECT coalesce(o.value, d.default_value) INTO result
      FROM filegc.setting_defaults d
      LEFT JOIN filegc.setting_overrides o USING (name)
     WHERE d.name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'filegc: unknown setting "%"', setting_name
            USING HINT = 'SELECT name, value, description FROM filegc.settings lists them.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION filegc.setting(text) IS 'The current value of a filegc setting, as text';

-- Checks a proposed value for a setting; raises an error that names the
-- setting, the value and what would be accepted.
CREATE FUNCTION filegc.validate_setting(setting_name text, proposed text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting_kind text;
    as_number numeric;
    as_interval interval;
BEGIN
    SELECT kind INTO setting_kind FROM filegc.setting_defaults WHERE name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'filegc: unknown setting "%"', setting_name
            USING HINT = 'SELECT name, value, description FROM filegc.settings lists them.';
    END IF;
    IF proposed IS NULL THEN
        RAISE EXCEPTION 'filegc: setting "%" cannot be NULL', setting_name
            USING HINT = format('DELETE FROM filegc.settings WHERE name = %L resets it to its default.', setting_name);
    END IF;
    CASE setting_kind
    WHEN 'interval' THEN
        BEGIN
            as_interval := proposed::interval;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'filegc: setting "%" takes an interval, not "%"', setting_name, proposed
                USING HINT = 'For example ''10 minutes'', ''1 hour'' or ''0''.';
        END;
        IF as_interval < interval '0' THEN
            RAISE EXCEPTION 'filegc: setting "%" cannot be negative ("%")', setting_name, proposed;
        END IF;
    WHEN 'fraction', 'percent', 'integer' THEN
        BEGIN
            as_number := proposed::numeric;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a number, not "%"', setting_name, proposed;
        END;
        IF setting_kind = 'fraction' AND NOT (as_number > 0 AND as_number <= 1) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a fraction greater than 0 and at most 1, not %', setting_name, proposed
                USING HINT = 'For example 0.25 lets one cleanup schedule at most a quarter of the volume.';
        ELSIF setting_kind = 'percent' AND NOT (as_number >= 0 AND as_number <= 100) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a percentage from 0 to 100, not %', setting_name, proposed;
        ELSIF setting_kind = 'integer' AND NOT (as_number >= 1 AND as_number = trunc(as_number)) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a whole number of at least 1, not %', setting_name, proposed;
        END IF;
    ELSE
        NULL;
    END CASE;
END
$$;
COMMENT ON FUNCTION filegc.validate_setting(text, text) IS 'Raises an error when a value is not acceptable for a setting';

-- Makes the settings view writable: UPDATE changes a setting, DELETE resets it.
CREATE FUNCTION filegc.settings_write() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    warning_pct numeric;
    critical_pct numeric;
    emergency_pct numeric;
BEGIN
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'filegc: settings cannot be added'
            USING HINT = 'Change an existing one: UPDATE filegc.settings SET value = ... WHERE name = ...';
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM filegc.setting_overrides WHERE name = OLD.name;
        RETURN OLD;
    END IF;
    IF NEW.name IS DISTINCT FROM OLD.name THEN
        RAISE EXCEPTION 'filegc: a setting cannot be renamed';
    END IF;
    PERFORM filegc.validate_setting(NEW.name, NEW.value);
    IF NEW.value = OLD.default_value THEN
        DELETE FROM filegc.setting_overrides WHERE name = NEW.name;
    ELSE
        INSERT INTO filegc.setting_overrides (name, value) VALUES (NEW.name, NEW.value)
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, changed_at = now(), changed_by = session_user;
    END IF;
    warning_pct := filegc.setting('alert_warning_pct')::numeric;
    critical_pct := filegc.setting('alert_critical_pct')::numeric;
    emergency_pct := filegc.setting('alert_emergency_pct')::numeric;
    IF NOT (warning_pct <= critical_pct AND critical_pct <= emergency_pct) THEN
        RAISE EXCEPTION 'filegc: alert levels must rise, but alert_warning_pct is %, alert_critical_pct %, alert_emergency_pct %',
            warning_pct, critical_pct, emergency_pct
            USING HINT = 'Change them in an order that keeps warning <= critical <= emergency.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER settings_write INSTEAD OF INSERT OR UPDATE OR DELETE ON filegc.settings
    FOR EACH ROW EXECUTE FUNCTION filegc.settings_write();

------------------------------------------------------------------------------
-- Tracked columns: which application columns hold file references.
------------------------------------------------------------------------------

CREATE TABLE filegc.tracked (
    table_name regclass NOT NULL,
    column_name name NOT NULL,
    is_array boolean NOT NULL,
    prefixes text[] NOT NULL DEFAULT '{}',
    index_name name NOT NULL,
    index_created_by_filegc boolean NOT NULL,
    tracked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE filegc.tracked IS 'The columns filegc.track() registered; read filegc.tracked_columns';

------------------------------------------------------------------------------
-- Tombstones: files scheduled for deletion, and the audit trail of each.
------------------------------------------------------------------------------

CREATE TABLE filegc.tombstones (
    id bigserial PRIMARY KEY,
    path text NOT NULL,
    reason text NOT NULL CHECK (reason IN ('unreferenced', 'orphan', 'expired', 'manual')),
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done', 'cancelled', 'failed')),
    include_referenced boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    due_at timestamptz NOT NULL,
    claimed_by text,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    outcome text CHECK (outcome IN ('deleted', 'trashed', 'already_gone', 'skipped_referenced')),
    bytes_freed bigint,
    finished_at timestamptz,
    restore_requested_at timestamptz,
    CHECK ((state IN ('done', 'cancelled', 'failed')) = (finished_at IS NOT NULL)),
    CHECK ((state = 'done') = (outcome IS NOT NULL))
);
COMMENT ON TABLE filegc.tombstones IS
    'Files scheduled for deletion (pending, claimed) and what became of them (done, cancelled, failed)';

-- At most one open tombstone per path; the triggers rely on it for ON CONFLICT.
CREATE UNIQUE INDEX tombstones_open_path ON filegc.tombstones (path) WHERE state IN ('pending', 'claimed');
CREATE INDEX tombstones_due ON filegc.tombstones (due_at) WHERE state IN ('pending', 'claimed');
CREATE INDEX tombstones_path ON filegc.tombstones (path);

------------------------------------------------------------------------------
-- Stored values that cannot be references.
------------------------------------------------------------------------------

CREATE TABLE filegc.invalid_refs (
    table_name regclass NOT NULL,
    column_name name NOT NULL,
    value text NOT NULL,
    problem text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, column_name, value)
);
COMMENT ON TABLE filegc.invalid_refs IS
    'Values in tracked columns that cannot name a file under the volume root: never references, and their file names are never orphans';
