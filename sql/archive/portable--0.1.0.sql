-- filegc 0.1.0, portable install: run it as the owner of the application's tables.
CREATE SCHEMA filegc;

-- sql/schema.sql
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


-- sql/portable/ref_path.sql
-- The portable engine's path rules: the same rules as extension/src/path_rules.rs,
-- in PL/pgSQL, for a PostgreSQL that cannot load the extension. Both must agree
-- exactly: tests check them against the shared vectors
-- (tests/data/ref_path_vectors.tsv) and against each other on generated input.

-- What a stored value means: the path it references, or why it cannot be one;
-- both NULL when the value is empty (not a reference at all).
CREATE FUNCTION filegc.normalize_ref(value text, prefixes text[], OUT path text, OUT problem text)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    url text[];
    decoded bytea := '';
    has_nul boolean := false;
    i integer;
    n integer;
    best_length integer := -1;
    best_rest text;
    prefix text;
    rest text;
    segment text;
BEGIN
    IF value = '' THEN
        RETURN;
    END IF;
    path := value;

    -- A URL is reduced to its path: no scheme, host, query or fragment.
    url := regexp_match(value, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)');
    IF url IS NOT NULL THEN
        path := url[1];
        IF position('%' IN path) > 0 THEN
            i := 1;
            n := length(path);
            WHILE i <= n LOOP
                IF substr(path, i, 1) = '%' AND i + 2 <= n AND substr(path, i + 1, 2) ~ '^[0-9A-Fa-f]{2}$' THEN
                    -- text cannot hold NUL: a stand-in lets the UTF-8 check
                    -- come first, as in Rust, and the NUL is reported after.
                    IF substr(path, i + 1, 2) = '00' THEN
                        has_nul := true;
                        decoded := decoded || '\x01'::bytea;
                    ELSE
                        decoded := decoded || decode(substr(path, i + 1, 2), 'hex');
                    END IF;
                    i := i + 3;
                ELSE
                    decoded := decoded || convert_to(substr(path, i, 1), 'UTF8');
                    i := i + 1;
                END IF;
            END LOOP;
            BEGIN
                path := convert_from(decoded, 'UTF8');
            EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
                path := NULL;
                problem := 'percent-encoding does not decode to UTF-8';
                RETURN;
            END;
            IF has_nul THEN
                path := NULL;
                problem := 'contains a NUL byte';
                RETURN;
            END IF;
        END IF;
    END IF;

    -- The longest prefix that matches on a segment boundary.
    FOREACH prefix IN ARRAY prefixes LOOP
        CONTINUE WHEN prefix IS NULL OR prefix = '' OR left(path, length(prefix)) <> prefix;
        rest := substr(path, length(prefix) + 1);
        IF right(prefix, 1) <> '/' AND rest <> '' THEN
            CONTINUE WHEN left(rest, 1) <> '/';
            rest := substr(rest, 2);
        END IF;
        IF octet_length(prefix) > best_length THEN
            best_length := octet_length(prefix);
            best_rest := rest;
        END IF;
    END LOOP;
    IF best_length >= 0 THEN
        path := best_rest;
    END IF;

    WHILE left(path, 2) = './' LOOP
        path := substr(path, 3);
    END LOOP;

    problem := CASE
        WHEN path = '' THEN 'nothing is left after removing the URL parts and the prefix'
        WHEN position(E'\\' IN path) > 0 THEN 'contains a backslash'
        WHEN left(path, 1) = '/' THEN 'absolute path outside every configured prefix'
    END;
    IF problem IS NULL THEN
        FOREACH segment IN ARRAY string_to_array(path, '/') LOOP
            IF segment = '..' THEN
                problem := 'contains a ''..'' segment';
                EXIT;
            ELSIF segment IN ('.', '') THEN
                problem := 'contains a ''.'' or empty segment';
                EXIT;
            END IF;
        END LOOP;
    END IF;
    IF problem IS NOT NULL THEN
        path := NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION filegc.normalize_ref(text, text[]) IS
    'The path a stored value references (relative to the volume root), or why it cannot be one';

-- The three faces below run as their owner: the indexes on tracked columns
-- evaluate ref_path for the application's role, which has no USAGE on the
-- schema filegc (the extension's C functions need none).
CREATE FUNCTION filegc.ref_path(value text, prefixes text[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (filegc.normalize_ref(value, prefixes)).path
$$;
COMMENT ON FUNCTION filegc.ref_path(text, text[]) IS
    'The path a stored value references, relative to the volume root; NULL when it references nothing or cannot be a reference';

CREATE FUNCTION filegc.ref_paths(stored_values text[], prefixes text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT p COLLATE "C" ORDER BY p COLLATE "C"), '{}')
      FROM unnest(stored_values) AS v, filegc.ref_path(v, prefixes) AS p
     WHERE p IS NOT NULL
$$;
COMMENT ON FUNCTION filegc.ref_paths(text[], text[]) IS
    'The paths an array of stored values references (NULLs and invalid values left out, duplicates kept once)';

CREATE FUNCTION filegc.ref_path_problem(value text, prefixes text[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (filegc.normalize_ref(value, prefixes)).problem
$$;
COMMENT ON FUNCTION filegc.ref_path_problem(text, text[]) IS
    'Why a stored value cannot be a reference; NULL when it is one or is empty';


-- sql/portable/triggers.sql
-- The portable engine's row and TRUNCATE triggers: what extension/src/triggers.rs
-- does, in PL/pgSQL. filegc.install_triggers passes the tracked columns as
-- arguments: per column its name, 'array' or 'scalar', the number of
-- prefixes, then the prefixes.

-- The references and invalid values of one row: `values` holds the row's
-- tracked values, each tagged with its column index in `columns`.
CREATE FUNCTION filegc.references_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    arg integer := 0;
    column_name text;
    is_array boolean;
    prefix_count integer;
    prefixes text[];
    old_json jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    new_json jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
    old_values text[];
    new_values text[];
    old_paths text[] := '{}';
    new_paths text[] := '{}';
    old_raw text[] := '{}';
    invalid_columns name[] := '{}';
    invalid_values text[] := '{}';
    invalid_problems text[] := '{}';
    stored text;
    normalized record;
    changed boolean := false;
BEGIN
    WHILE arg < TG_NARGS LOOP
        column_name := TG_ARGV[arg];
        is_array := TG_ARGV[arg + 1] = 'array';
        prefix_count := TG_ARGV[arg + 2]::integer;
        prefixes := coalesce(TG_ARGV[arg + 3 : arg + 2 + prefix_count], '{}');
        arg := arg + 3 + prefix_count;
        IF (old_json IS NOT NULL AND NOT old_json ? column_name) OR (new_json IS NOT NULL AND NOT new_json ? column_name) THEN
            RAISE EXCEPTION 'filegc: tracked column "%" is missing from table %.%', column_name, TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING HINT = 'Run filegc.track() with its new name, or filegc.untrack().';
        END IF;
        old_values := filegc.json_values(old_json -> column_name, is_array);
        new_values := filegc.json_values(new_json -> column_name, is_array);
        changed := changed OR old_values IS DISTINCT FROM new_values OR TG_OP <> 'UPDATE';
        FOREACH stored IN ARRAY old_values LOOP
            old_raw := old_raw || stored;
            normalized := filegc.normalize_ref(stored, prefixes);
            IF normalized.path IS NOT NULL THEN
                old_paths := old_paths || normalized.path;
            END IF;
        END LOOP;
        FOREACH stored IN ARRAY new_values LOOP
            normalized := filegc.normalize_ref(stored, prefixes);
            IF normalized.path IS NOT NULL THEN
                new_paths := new_paths || normalized.path;
            ELSIF normalized.problem IS NOT NULL THEN
                invalid_columns := invalid_columns || column_name::name;
                invalid_values := invalid_values || stored;
                invalid_problems := invalid_problems || normalized.problem;
            END IF;
        END LOOP;
    END LOOP;
    IF NOT changed THEN
        RETURN NULL;
    END IF;

    -- An UPDATE reports only values that are new to the row.
    FOR arg IN 1 .. coalesce(cardinality(invalid_values), 0) LOOP
        CONTINUE WHEN invalid_values[arg] = ANY (old_raw);
        RAISE WARNING 'filegc: %.%.% holds "%", which is not a file reference (%); it is recorded in filegc.invalid_refs and never counts as one. Check the prefixes given to filegc.track()',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, invalid_columns[arg], invalid_values[arg], invalid_problems[arg];
        PERFORM filegc.record_invalid_refs(TG_RELID::regclass, ARRAY[invalid_columns[arg]],
                                           ARRAY[invalid_values[arg]], ARRAY[invalid_problems[arg]]);
    END LOOP;

    PERFORM filegc.apply_reference_changes(
        ARRAY(SELECT DISTINCT p FROM unnest(old_paths) AS p WHERE p <> ALL (new_paths) ORDER BY p),
        ARRAY(SELECT DISTINCT p FROM unnest(new_paths) AS p WHERE p <> ALL (old_paths) ORDER BY p));
    RETURN NULL;
END
$$;

-- A column's stored values from a row as JSON: none for NULL, one for a
-- scalar, the non-NULL elements of an array.
CREATE FUNCTION filegc.json_values(value jsonb, is_array boolean) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN '{}'::text[]
        WHEN is_array THEN ARRAY(SELECT e FROM jsonb_array_elements_text(value) AS e WHERE e IS NOT NULL)
        ELSE ARRAY[value #>> '{}']
    END
$$;

-- BEFORE TRUNCATE, FOR EACH STATEMENT: schedules the paths only this table referenced.
CREATE FUNCTION filegc.truncate_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM filegc.release_table(TG_RELID::regclass);
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION filegc.references_trigger(), filegc.truncate_trigger() FROM PUBLIC;


-- sql/references.sql
-- filegc: references, the lock protocol, tombstone scheduling, track/untrack.
--
-- Shared by every engine. An engine provides four functions of its own:
--   filegc.ref_path(value text, prefixes text[]) RETURNS text        IMMUTABLE
--   filegc.ref_paths(values text[], prefixes text[]) RETURNS text[]  IMMUTABLE
--   filegc.ref_path_problem(value text, prefixes text[]) RETURNS text
--   filegc.references_trigger() and filegc.truncate_trigger()        triggers
-- Everything here reaches them by name, from PL/pgSQL or dynamic SQL, so this
-- file does not care which engine provides them.

------------------------------------------------------------------------------
-- The lock protocol
--
-- The promise: a file that a committed row references is never deleted.
--
-- Two spaces of transaction-level advisory locks, keyed by a hash of the path
-- (filegc.path_lock_key):
--
-- SAFETY (class filegc.path_lock_class()): between writers and the sweeper.
-- 1. A row trigger takes the SHARED lock of every path that ENTERS a row, and
--    holds it until its transaction ends. Shared locks never conflict with
--    each other, so application transactions never wait for one another here.
-- 2. The sweeper, before it deletes a path, takes the EXCLUSIVE lock with
--    pg_try_advisory_xact_lock (it never waits: a busy path is retried later),
--    checks filegc.is_referenced with a fresh snapshot, deletes, and commits,
--    holding the lock across the check and the deletion.
-- 3. Why that is enough. Take any row R that references path P and commits.
--    Its trigger took SHARED(P) before R's transaction committed.
--    - If the sweeper held EXCLUSIVE(P) first, R's trigger waited until the
--      sweeper committed: the file went before R was committed, so no
--      committed row referenced P then (and the trigger asks for the trashed
--      file back).
--    - Otherwise the sweeper's try-lock fails until R's transaction ends, and
--      after that the sweeper's fresh snapshot sees R and refuses.
--    This holds at every isolation level of the application, because the
--    sweeper's check runs in its own READ COMMITTED transaction. Only the
--    sweeper ever waits on nothing and only writers ever wait, so this space
--    cannot deadlock.
--
-- ORDER (class filegc.order_lock_class()): between writers, for accurate
-- scheduling. It is never waited on, only tried.
-- 4. For each path that LEAVES a row, the trigger tries the EXCLUSIVE lock.
--    If another open transaction holds it, that transaction is removing the
--    same path too: this trigger's snapshot may still show the other row, so
--    it schedules the path without trusting the probe. A tombstone for a path
--    that turns out referenced costs nothing (the sweeper's check skips it);
--    a missing one would leave the file until the orphan cleanup.
-- 5. Otherwise the trigger probes the tracked columns and schedules the path
--    if nothing references it. A path entering a row cancels its pending
--    tombstone. At READ COMMITTED, and with transactions that do not overlap,
--    that keeps the tombstones exact. Overlapping transactions, or
--    REPEATABLE READ snapshots, can leave a tombstone for a referenced path
--    (point 3 makes it harmless) or, rarely, miss one (the orphan cleanup
--    finds the file). Neither breaks the promise.
--
-- 6. A transaction that touches very many paths (a mass DELETE or INSERT,
--    TRUNCATE, untrack) would fill PostgreSQL's lock table with one lock per
--    path. Past filegc.max_path_locks() locks it takes one SHARED lock on an
--    escalation key in the SAFETY space instead of further SHARED path locks,
--    and it stops trying ORDER locks (it then trusts the probe). The sweeper
--    tries EXCLUSIVE on the escalation key too, so such a transaction holds
--    off all deletions until it ends, which keeps point 3 true.
------------------------------------------------------------------------------

-- The advisory-lock class of SAFETY path locks ('fgc1'); the two-key form
-- keeps filegc's keys apart from an application's single-bigint locks.
CREATE FUNCTION filegc.path_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1718052657 $$;

-- The advisory-lock class of the SAFETY escalation lock ('fgc2').
CREATE FUNCTION filegc.escalation_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1718052658 $$;

-- The advisory-lock class of ORDER locks ('fgc3').
CREATE FUNCTION filegc.order_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1718052659 $$;

-- How many path locks one transaction takes before it escalates: PostgreSQL
-- sizes its lock table for max_locks_per_transaction (64 by default) each.
CREATE FUNCTION filegc.max_path_locks() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 64 $$;

CREATE FUNCTION filegc.path_lock_key(path text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT pg_catalog.hashtext(path) $$;
COMMENT ON FUNCTION filegc.path_lock_key(text) IS 'The advisory-lock key of a path (in the classes filegc.path_lock_class() and filegc.order_lock_class())';

-- Counts this transaction's path locks; returns false, and takes the
-- escalation lock, when `wanted` more would pass the limit.
CREATE FUNCTION filegc.reserve_path_locks(wanted integer) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    taken integer := coalesce(nullif(current_setting('filegc.path_locks_taken', true), ''), '0')::integer;
BEGIN
    IF taken < 0 THEN
        RETURN false;
    END IF;
    IF taken + wanted > filegc.max_path_locks() THEN
        PERFORM pg_advisory_xact_lock_shared(filegc.escalation_lock_class(), 0);
        PERFORM set_config('filegc.path_locks_taken', '-1', true);
        RETURN false;
    END IF;
    PERFORM set_config('filegc.path_locks_taken', (taken + wanted)::text, true);
    RETURN true;
END
$$;

-- Point 1: the SHARED SAFETY lock of each path entering a row.
CREATE FUNCTION filegc.lock_entering_paths(paths text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(cardinality(paths), 0) > 0 AND filegc.reserve_path_locks(cardinality(paths)) THEN
        PERFORM pg_advisory_xact_lock_shared(filegc.path_lock_class(), filegc.path_lock_key(p))
           FROM unnest(paths) AS p;
    END IF;
END
$$;

-- Point 4: tries the EXCLUSIVE ORDER lock of each path leaving a row and
-- returns the paths another open transaction is removing too.
CREATE FUNCTION filegc.contested_leaving_paths(paths text[]) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    contested text[];
BEGIN
    IF coalesce(cardinality(paths), 0) = 0 OR NOT filegc.reserve_path_locks(cardinality(paths)) THEN
        RETURN '{}';
    END IF;
    SELECT coalesce(array_agg(p), '{}') INTO contested
      FROM unnest(paths) AS p
     WHERE NOT pg_try_advisory_xact_lock(filegc.order_lock_class(), filegc.path_lock_key(p));
    RETURN contested;
END
$$;

------------------------------------------------------------------------------
-- Probing the tracked columns
------------------------------------------------------------------------------

-- The expression that maps a tracked column to its references; the same text
-- builds the index, the probes and the listings, so the planner matches them.
CREATE FUNCTION filegc.reference_expression(col name, is_array boolean, prefixes text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format(CASE WHEN is_array THEN 'filegc.ref_paths(%I, %L::text[])'
                       ELSE 'filegc.ref_path(%I, %L::text[])' END,
                  col, prefixes)
$$;

-- A query that takes $1 text[] of paths and returns, as text[], those that no
-- tracked column references (leaving out the columns of `excluded`).
CREATE FUNCTION filegc.unreferenced_probe(excluded regclass DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'SELECT coalesce(array_agg(candidate.path), ''{}'') FROM unnest($1::text[]) AS candidate(path)'
        || coalesce(' WHERE ' || string_agg(
               format('NOT EXISTS (SELECT FROM %s WHERE %s %s)',
                      t.table_name,
                      filegc.reference_expression(t.column_name, t.is_array, t.prefixes),
                      CASE WHEN t.is_array THEN '@> ARRAY[candidate.path]' ELSE '= candidate.path' END),
               ' AND ' ORDER BY t.table_name::text, t.column_name), '')
      FROM filegc.tracked t
      JOIN pg_class c ON c.oid = t.table_name
     WHERE excluded IS NULL OR t.table_name <> excluded
$$;

-- The paths among `paths` that no tracked column references.
CREATE FUNCTION filegc.unreferenced_among(paths text[], excluded regclass DEFAULT NULL) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result text[];
BEGIN
    IF coalesce(cardinality(paths), 0) = 0 THEN
        RETURN '{}';
    END IF;
    EXECUTE filegc.unreferenced_probe(excluded) INTO result USING paths;
    RETURN result;
END
$$;

CREATE FUNCTION filegc.is_referenced(path text) RETURNS boolean
LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT cardinality(filegc.unreferenced_among(ARRAY[path])) = 0
$$;
COMMENT ON FUNCTION filegc.is_referenced(text) IS
    'True when a row of any tracked column references this path (relative to the volume root); probes each column''s index';

-- Every reference of the tracked columns listed in `columns` of `tbl`, as a
-- query returning (path, source).
CREATE FUNCTION filegc.reference_rows_query(tbl regclass, columns filegc.tracked[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(
               format(CASE WHEN t.is_array
                           THEN 'SELECT unnest(%s), %L FROM %s'
                           ELSE 'SELECT %s, %L FROM %s WHERE %1$s IS NOT NULL' END,
                      filegc.reference_expression(t.column_name, t.is_array, t.prefixes),
                      format('%s.%I', tbl, t.column_name), tbl),
               ' UNION ALL ')
      FROM unnest(columns) AS t
$$;

-- The distinct paths referenced by the given columns of one table.
CREATE FUNCTION filegc.paths_in(tbl regclass, columns filegc.tracked[]) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    result text[];
BEGIN
    IF coalesce(cardinality(columns), 0) = 0 THEN
        RETURN '{}';
    END IF;
    EXECUTE format('SELECT coalesce(array_agg(DISTINCT r.path), ''{}'') FROM (%s) AS r(path, source)',
                   filegc.reference_rows_query(tbl, columns))
       INTO result;
    RETURN result;
END
$$;

-- Every (path, source) of every tracked column.
CREATE FUNCTION filegc.reference_rows() RETURNS TABLE (path text, source text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    query text;
BEGIN
    SELECT string_agg(filegc.reference_rows_query(t.table_name, t.columns), ' UNION ALL ')
      INTO query
      FROM (SELECT tr.table_name, array_agg(tr ORDER BY tr.column_name) AS columns
              FROM filegc.tracked tr
              JOIN pg_class c ON c.oid = tr.table_name
             GROUP BY tr.table_name) AS t;
    IF query IS NOT NULL THEN
        RETURN QUERY EXECUTE query;
    END IF;
END
$$;

CREATE VIEW filegc.references AS
SELECT r.path,
       count(*) AS refcount,
       array_agg(DISTINCT r.source ORDER BY r.source) AS sources
  FROM filegc.reference_rows() AS r
 GROUP BY r.path;
COMMENT ON VIEW filegc.references IS
    'Every referenced path with how many row values point at it and the table.column pairs they are in (computed from the rows)';

------------------------------------------------------------------------------
-- Scheduling
------------------------------------------------------------------------------

-- Writes a tombstone (reason unreferenced) for each path that has no open one.
CREATE FUNCTION filegc.schedule_unreferenced(paths text[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scheduled integer;
BEGIN
    IF coalesce(cardinality(paths), 0) = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO filegc.tombstones (path, reason, due_at)
    SELECT p, 'unreferenced', now() + filegc.setting('unreferenced_delay')::interval
      FROM unnest(paths) AS p
        ON CONFLICT (path) WHERE state IN ('pending', 'claimed') DO NOTHING;
    GET DIAGNOSTICS scheduled = ROW_COUNT;
    IF scheduled > 0 THEN
        PERFORM pg_notify('filegc', 'scheduled');
    END IF;
    RETURN scheduled;
END
$$;

-- Schedules the paths that left rows and that no tracked column outside
-- `excluded` references (points 4 and 5 of the lock protocol). Returns how
-- many tombstones it wrote.
CREATE FUNCTION filegc.release_paths(paths text[], excluded regclass DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    contested text[] := filegc.contested_leaving_paths(paths);
    uncontested text[] := ARRAY(SELECT p FROM unnest(paths) AS p WHERE p <> ALL (contested));
BEGIN
    RETURN filegc.schedule_unreferenced(contested || filegc.unreferenced_among(uncontested, excluded));
END
$$;

-- What a row trigger does once it knows which paths left and entered a row:
-- paths that entered cancel their pending tombstone (and ask for a trashed
-- file to come back); paths that left are scheduled when nothing else
-- references them.
CREATE FUNCTION filegc.apply_reference_changes(removed text[], added text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(cardinality(added), 0) > 0 THEN
        PERFORM filegc.lock_entering_paths(added);
        UPDATE filegc.tombstones
           SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
               finished_at = CASE WHEN state = 'pending' THEN now() ELSE finished_at END,
               restore_requested_at = CASE WHEN state = 'done' THEN now() ELSE restore_requested_at END
         WHERE path = ANY (added)
           AND (state = 'pending' OR (state = 'done' AND outcome = 'trashed' AND restore_requested_at IS NULL));
    END IF;
    PERFORM filegc.release_paths(removed);
END
$$;

-- Records values of a tracked column that cannot be references.
CREATE FUNCTION filegc.record_invalid_refs(tbl regclass, columns name[], stored_values text[], problems text[])
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO filegc.invalid_refs AS i (table_name, column_name, value, problem)
    SELECT tbl, c, v, p FROM unnest(columns, stored_values, problems) AS u(c, v, p)
        ON CONFLICT (table_name, column_name, value)
        DO UPDATE SET last_seen_at = now(), problem = EXCLUDED.problem
$$;

-- BEFORE TRUNCATE: the rows are still there, so list their paths and schedule
-- those that no other table references.
CREATE FUNCTION filegc.release_table(tbl regclass) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN filegc.release_paths(
        filegc.paths_in(tbl, ARRAY(SELECT t FROM filegc.tracked t WHERE t.table_name = tbl)),
        tbl);
END
$$;

------------------------------------------------------------------------------
-- Tracking columns
------------------------------------------------------------------------------

CREATE VIEW filegc.tracked_columns AS
SELECT t.table_name, t.column_name, t.prefixes, t.index_name, t.is_array, t.index_created_by_filegc, t.tracked_at
  FROM filegc.tracked t
  JOIN pg_class c ON c.oid = t.table_name;
COMMENT ON VIEW filegc.tracked_columns IS 'The columns whose values filegc treats as file references, with their prefixes and index';

-- An existing valid, unique-purpose index on exactly the reference expression.
CREATE FUNCTION filegc.find_reference_index(tbl regclass, col name, is_array boolean, prefixes text[]) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ic.relname
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
     WHERE i.indrelid = tbl
       AND i.indnatts = 1
       AND i.indkey[0] = 0
       AND i.indpred IS NULL
       AND i.indisvalid
       AND am.amname = CASE WHEN is_array THEN 'gin' ELSE 'btree' END
       AND regexp_replace(pg_get_indexdef(i.indexrelid, 1, false), '[()\s]|::text(\[\])?|::character varying(\[\])?', '', 'g')
         = regexp_replace(filegc.reference_expression(col, is_array, prefixes), '[()\s]|::text(\[\])?', '', 'g')
     ORDER BY ic.relname
     LIMIT 1
$$;

-- (Re)creates the triggers of a table from its tracked columns.
CREATE FUNCTION filegc.install_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    columns text;
    arguments text;
BEGIN
    IF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'filegc_references') THEN
        EXECUTE format('DROP TRIGGER filegc_references ON %s', tbl);
    END IF;
    IF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'filegc_truncate') THEN
        EXECUTE format('DROP TRIGGER filegc_truncate ON %s', tbl);
    END IF;
    -- Trigger arguments, per column: name, 'array' or 'scalar', the number of
    -- prefixes, then the prefixes.
    SELECT string_agg(format('%I', t.column_name), ', ' ORDER BY t.column_name),
           string_agg(concat_ws(', ',
                          quote_literal(t.column_name),
                          quote_literal(CASE WHEN t.is_array THEN 'array' ELSE 'scalar' END),
                          quote_literal(cardinality(t.prefixes)),
                          (SELECT string_agg(quote_literal(p), ', ') FROM unnest(t.prefixes) AS p)),
                      ', ' ORDER BY t.column_name)
      INTO columns, arguments
      FROM filegc.tracked t
     WHERE t.table_name = tbl;
    IF columns IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER filegc_references AFTER INSERT OR DELETE OR UPDATE OF %s ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION filegc.references_trigger(%s)', columns, tbl, arguments);
    EXECUTE format('CREATE TRIGGER filegc_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION filegc.truncate_trigger()', tbl);
END
$$;

CREATE FUNCTION filegc.track(tbl regclass, col name, prefixes text[] DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    relation_kind "char";
    column_type regtype;
    column_is_array boolean;
    previous filegc.tracked;
    index_found name;
    index_created boolean := false;
    expression text;
    reference_count bigint;
BEGIN
    IF tbl IS NULL OR col IS NULL THEN
        RAISE EXCEPTION 'filegc.track: table and column are required';
    END IF;
    prefixes := coalesce(prefixes, '{}');
    IF array_position(prefixes, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'filegc.track: prefixes cannot contain NULL';
    END IF;
    prefixes := ARRAY(SELECT DISTINCT p FROM unnest(prefixes) AS p WHERE p <> '' ORDER BY p);

    SELECT relkind INTO relation_kind FROM pg_class WHERE oid = tbl;
    IF relation_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'filegc.track: % is not a table', tbl
            USING HINT = 'Track the columns of the table that stores the references, not of a view.';
    END IF;
    SELECT atttypid::regtype INTO column_type
      FROM pg_attribute
     WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'filegc.track: table % has no column "%"', tbl, col;
    END IF;
    IF column_type IN ('text'::regtype, 'character varying'::regtype) THEN
        column_is_array := false;
    ELSIF column_type IN ('text[]'::regtype, 'character varying[]'::regtype) THEN
        column_is_array := true;
    ELSE
        RAISE EXCEPTION 'filegc.track: column %.% is of type %', tbl, col, column_type
            USING HINT = 'filegc tracks columns of type text, varchar or text[] that hold file names, paths or URLs.';
    END IF;

    SELECT * INTO previous FROM filegc.tracked t WHERE t.table_name = tbl AND t.column_name = col;
    IF FOUND AND previous.prefixes IS DISTINCT FROM prefixes THEN
        -- New prefixes change which values are references: untrack first so
        -- that references the old prefixes gave and the new ones do not are
        -- scheduled like any other lost reference.
        PERFORM filegc.untrack(tbl, col);
        previous := NULL;
    END IF;

    expression := filegc.reference_expression(col, column_is_array, prefixes);
    index_found := filegc.find_reference_index(tbl, col, column_is_array, prefixes);
    IF previous.index_name IS NOT NULL AND index_found IS NOT NULL THEN
        index_created := previous.index_created_by_filegc;
    ELSIF index_found IS NULL THEN
        EXECUTE format('CREATE INDEX ON %s USING %s ((%s))',
                       tbl, CASE WHEN column_is_array THEN 'gin' ELSE 'btree' END, expression);
        index_found := filegc.find_reference_index(tbl, col, column_is_array, prefixes);
        index_created := true;
    END IF;

    INSERT INTO filegc.tracked (table_name, column_name, is_array, prefixes, index_name, index_created_by_filegc)
    VALUES (tbl, col, column_is_array, prefixes, index_found, index_created)
        ON CONFLICT (table_name, column_name)
        DO UPDATE SET index_name = EXCLUDED.index_name, is_array = EXCLUDED.is_array;
    PERFORM filegc.install_triggers(tbl);

    -- Values already in the table that cannot be references.
    EXECUTE format(
        'SELECT filegc.record_invalid_refs($1, array_agg($2::name), array_agg(v), array_agg(filegc.ref_path_problem(v, $3))) '
        'FROM (SELECT DISTINCT v FROM %s, LATERAL unnest(%s) AS v) AS s WHERE filegc.ref_path_problem(v, $3) IS NOT NULL',
        tbl, CASE WHEN column_is_array THEN format('%I::text[]', col) ELSE format('ARRAY[%I::text]', col) END)
        USING tbl, col, prefixes;

    EXECUTE format(CASE WHEN column_is_array
                        THEN 'SELECT coalesce(sum(cardinality(%1$s)), 0) FROM %2$s'
                        ELSE 'SELECT count(*) FROM %2$s WHERE %1$s IS NOT NULL' END,
                   expression, tbl)
       INTO reference_count;
    RETURN reference_count;
END
$$;
COMMENT ON FUNCTION filegc.track(regclass, name, text[]) IS
    'Registers a column that holds file references (text, varchar or text[]): creates or reuses its index, installs the triggers, returns how many references it holds';

CREATE FUNCTION filegc.untrack(tbl regclass, col name) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    removed filegc.tracked;
    candidates text[];
BEGIN
    DELETE FROM filegc.tracked t WHERE t.table_name = tbl AND t.column_name = col RETURNING * INTO removed;
    IF NOT FOUND THEN
        RAISE NOTICE 'filegc.untrack: %.% is not tracked', tbl, col;
        RETURN 0;
    END IF;
    PERFORM filegc.install_triggers(tbl);
    candidates := filegc.paths_in(tbl, ARRAY[removed]);
    IF removed.index_created_by_filegc THEN
        EXECUTE format('DROP INDEX IF EXISTS %I.%I',
                       (SELECT nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl),
                       removed.index_name);
    END IF;
    RETURN filegc.release_paths(candidates);
END
$$;
COMMENT ON FUNCTION filegc.untrack(regclass, name) IS
    'Stops tracking a column: removes its triggers and the index filegc created; returns how many paths lost their last reference and were scheduled';

-- Keeps filegc.tracked in step when a tracked table or column is dropped. The
-- files that only the dropped rows referenced become orphans: the orphan
-- cleanup finds them (the rows are gone before this runs, so they cannot be
-- listed here).
CREATE FUNCTION filegc.forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    affected regclass;
BEGIN
    FOR affected IN
        DELETE FROM filegc.tracked t
         USING pg_event_trigger_dropped_objects() d
         WHERE d.objid = t.table_name
           AND (d.object_type = 'table'
                OR (d.object_type = 'table column' AND d.address_names[3] = t.column_name))
        RETURNING t.table_name
    LOOP
        IF EXISTS (SELECT FROM pg_class WHERE oid = affected) THEN
            PERFORM filegc.install_triggers(affected);
        END IF;
    END LOOP;
    DELETE FROM filegc.invalid_refs i
     WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = i.table_name);
END
$$;

REVOKE EXECUTE ON FUNCTION
    filegc.reserve_path_locks(integer),
    filegc.lock_entering_paths(text[]),
    filegc.contested_leaving_paths(text[]),
    filegc.schedule_unreferenced(text[]),
    filegc.release_paths(text[], regclass),
    filegc.apply_reference_changes(text[], text[]),
    filegc.record_invalid_refs(regclass, name[], text[], text[]),
    filegc.release_table(regclass),
    filegc.install_triggers(regclass),
    filegc.track(regclass, name, text[]),
    filegc.untrack(regclass, name),
    filegc.is_referenced(text),
    filegc.reference_rows()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION filegc.is_referenced(text) TO filegc_sweeper;


-- The portable install records its version; filegc.version() reads it.
CREATE TABLE filegc.portable_install (version text NOT NULL, installed_at timestamptz NOT NULL DEFAULT now());
INSERT INTO filegc.portable_install (version) VALUES ('0.1.0');
-- Keeping filegc.tracked in step with DROP TABLE needs an event trigger, which needs a superuser.
DO $$ BEGIN
IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
CREATE EVENT TRIGGER filegc_forget_dropped ON sql_drop EXECUTE FUNCTION filegc.forget_dropped();
ELSE
RAISE NOTICE 'filegc: not a superuser, so no event trigger: after DROP TABLE of a tracked table, run DELETE FROM filegc.tracked WHERE NOT EXISTS (SELECT FROM pg_class WHERE oid = table_name)';
END IF;
END $$;
