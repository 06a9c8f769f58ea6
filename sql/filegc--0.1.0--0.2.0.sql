-- filegc 0.2.0: the inventory the sweeper reports, the views and functions
-- for operators, and the sweeper's queue protocol; triggers that write only
-- notes, and one final check that every deletion route goes through.
--
-- The upgrade from 0.1.0, and nothing else: ALTER EXTENSION filegc UPDATE
-- (and `filegc install-sql --apply` for a portable install) runs it on a
-- database that 0.1.0 installed. A new install runs the current definitions
-- (sql/*.sql, one file per concept) instead; tests/tests/upgrade.rs proves
-- that both end in the same catalog. Read the current definition of an
-- object in the file named for its concept, not here.

------------------------------------------------------------------------------
-- Settings added in this version
------------------------------------------------------------------------------

ALTER TABLE filegc.setting_defaults DROP CONSTRAINT setting_defaults_kind_check;
ALTER TABLE filegc.setting_defaults
    ADD CONSTRAINT setting_defaults_kind_check CHECK (kind IN ('interval', 'fraction', 'percent', 'integer', 'text', 'patterns',
                                                               'boolean', 'window', 'url', 'integer_or_off',
                                                               'webhook_format'));

INSERT INTO filegc.setting_defaults (name, default_value, kind, description) VALUES
    ('managed_patterns', '*.png,*.jpg,*.jpeg,*.webp', 'patterns',
     'Comma-separated file-name patterns (* and ?, case-insensitive) of the files filegc manages; orphan and age cleanups consider only these');

-- The maintenance policies `filegc run` applies.
INSERT INTO filegc.setting_defaults (name, default_value, kind, description) VALUES
    ('orphan_cleanup_interval', '1 day', 'interval',
     'How often filegc run cleans up the eligible orphans (filegc.cleanup_orphans without force, so the circuit breaker applies), and runs the retention cleanup when retention_days is set; 0 turns both off'),
    ('retention_days', 'off', 'integer_or_off',
     'filegc run deletes managed images older than this many days (filegc.cleanup_older_than without force), as often as orphan_cleanup_interval; off keeps them'),
    ('retention_include_referenced', 'false', 'boolean',
     'Whether the retention cleanup also deletes old images that rows still reference (they then show in filegc.missing)'),
    ('maintenance_window', 'any', 'window',
     'When filegc run may start the orphan and retention cleanups: any, or HH:MM-HH:MM in UTC such as 02:00-05:00 (22:00-04:00 spans midnight)'),
    ('alert_webhook_url', 'off', 'url',
     'An http:// or https:// URL that filegc run POSTs {"level","previous_level","used_pct","volume","host"} to when the alert level rises or falls; off sends nothing'),
    ('alert_webhook_format', 'auto', 'webhook_format',
     'The body the alert webhook receives: slack ({"text"}), discord ({"content"}), json (the document above), or auto, which picks slack or discord from a Slack or Discord webhook URL and json otherwise'),
    ('emergency_cleanup', 'true', 'boolean',
     'When the alert level reaches emergency, filegc run empties the trash, then deletes the eligible orphans (never a referenced file)');

-- Every setting has a range that keeps each computation that uses it valid
-- (a date a delay away, a lease, an attempt count); a value outside it is
-- refused with the range.
CREATE OR REPLACE FUNCTION filegc.validate_setting(setting_name text, proposed text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting_kind text;
    as_number numeric;
    as_interval interval;
    lowest text := CASE setting_name WHEN 'lease' THEN '1 second' ELSE '0' END;
    highest text := CASE setting_name WHEN 'lease' THEN '1 day' ELSE '10 years' END;
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
            RAISE EXCEPTION 'filegc: setting "%" takes an interval from % to %, not "%"', setting_name, lowest, highest, proposed
                USING HINT = 'For example ''10 minutes'', ''1 hour'' or ''0''.';
        END;
        IF as_interval < lowest::interval OR as_interval > highest::interval THEN
            RAISE EXCEPTION 'filegc: setting "%" takes an interval from % to %, not "%"', setting_name, lowest, highest, proposed;
        END IF;
    WHEN 'fraction', 'percent', 'integer' THEN
        BEGIN
            as_number := proposed::numeric;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a number, not "%"', setting_name, proposed;
        END;
        IF setting_kind = 'fraction' AND NOT (as_number > 0 AND as_number <= 1) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a fraction from just above 0 to 1, not %', setting_name, proposed
                USING HINT = 'For example 0.25 lets one cleanup schedule at most a quarter of the volume.';
        ELSIF setting_kind = 'percent' AND NOT (as_number >= 0 AND as_number <= 100) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a percentage from 0 to 100, not %', setting_name, proposed;
        ELSIF setting_kind = 'integer' AND NOT (as_number >= 1 AND as_number <= 1000 AND as_number = trunc(as_number)) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a whole number from 1 to 1000, not %', setting_name, proposed;
        END IF;
    WHEN 'patterns' THEN
        IF proposed !~ '^\s*[^,\s/]+(\s*,\s*[^,\s/]+)*\s*$' THEN
            RAISE EXCEPTION 'filegc: setting "%" takes comma-separated file-name patterns, not "%"', setting_name, proposed
                USING HINT = 'For example ''*.png,*.jpg,*.jpeg,*.webp''.';
        END IF;
    WHEN 'boolean' THEN
        IF lower(trim(proposed)) NOT IN ('true', 'false', 'on', 'off') THEN
            RAISE EXCEPTION 'filegc: setting "%" takes true or false, not "%"', setting_name, proposed
                USING HINT = 'on and off are accepted too.';
        END IF;
    WHEN 'integer_or_off' THEN
        IF lower(trim(proposed)) <> 'off'
           AND NOT (trim(proposed) ~ '^0*[1-9][0-9]{0,4}$' AND trim(proposed)::integer <= 36500) THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a whole number of days from 1 to 36500, or off, not "%"', setting_name, proposed
                USING HINT = 'For example ''90'', or ''off'' to turn it off.';
        END IF;
    WHEN 'window' THEN
        IF lower(trim(proposed)) <> 'any' THEN
            IF trim(proposed) !~ '^([01][0-9]|2[0-3]):[0-5][0-9]\s*-\s*([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
                RAISE EXCEPTION 'filegc: setting "%" takes any or a time range HH:MM-HH:MM in UTC, not "%"', setting_name, proposed
                    USING HINT = 'For example ''02:00-05:00'', or ''22:00-04:00'' across midnight.';
            END IF;
            IF trim(split_part(proposed, '-', 1)) = trim(split_part(proposed, '-', 2)) THEN
                RAISE EXCEPTION 'filegc: setting "%" is an empty window: "%" ends when it starts', setting_name, proposed
                    USING HINT = 'Use ''any'' to allow every time of day.';
            END IF;
        END IF;
    WHEN 'webhook_format' THEN
        IF lower(trim(proposed)) NOT IN ('auto', 'json', 'slack', 'discord') THEN
            RAISE EXCEPTION 'filegc: setting "%" takes auto, json, slack or discord, not "%"', setting_name, proposed
                USING HINT = 'auto sends Slack''s and Discord''s webhooks the bodies they accept, and JSON to any other URL.';
        END IF;
    WHEN 'url' THEN
        IF lower(trim(proposed)) <> 'off' AND trim(proposed) !~* '^https?://[^/?#\s]+([/?#]\S*)?$' THEN
            RAISE EXCEPTION 'filegc: setting "%" takes an http:// or https:// URL, or off, not "%"', setting_name, proposed
                USING HINT = 'For example ''https://hooks.example.com/filegc''.';
        END IF;
    ELSE
        NULL;
    END CASE;
END
$$;

-- A value stored past the checks (by a superuser with filegc's triggers
-- disabled, or from a dump of an older version that took more) is read as
-- the default, with a warning, so that no report, cleanup or sweep fails on
-- it. The application's writes read no setting at all.
CREATE OR REPLACE FUNCTION filegc.setting(setting_name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stored text;
    fallback text;
BEGIN
    SELECT o.value, d.default_value INTO stored, fallback
      FROM filegc.setting_defaults d
      LEFT JOIN filegc.setting_overrides o USING (name)
     WHERE d.name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'filegc: unknown setting "%"', setting_name
            USING HINT = 'SELECT name, value, description FROM filegc.settings lists them.';
    END IF;
    IF stored IS NULL THEN
        RETURN fallback;
    END IF;
    BEGIN
        PERFORM filegc.validate_setting(setting_name, stored);
    EXCEPTION WHEN others THEN
        RAISE WARNING 'filegc: setting "%" holds "%", which it does not take; its default "%" applies', setting_name, stored, fallback
            USING HINT = format('DELETE FROM filegc.settings WHERE name = %L, or set a value it takes.', setting_name);
        RETURN fallback;
    END;
    RETURN stored;
END
$$;

-- Overrides an older version accepted and this one does not go back to their
-- default; from now on every write of the table is checked, whichever way it
-- comes (the view, an INSERT of its own, a restored dump, replica mode).
DO $$
DECLARE
    override record;
BEGIN
    FOR override IN SELECT name, value FROM filegc.setting_overrides LOOP
        BEGIN
            PERFORM filegc.validate_setting(override.name, override.value);
        EXCEPTION WHEN others THEN
            RAISE WARNING 'filegc: setting "%" held "%", which filegc 0.2.0 does not take (%); it is back to its default',
                override.name, override.value, SQLERRM;
            DELETE FROM filegc.setting_overrides WHERE name = override.name;
        END;
    END LOOP;
END
$$;

CREATE FUNCTION filegc.check_setting_override() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM filegc.validate_setting(NEW.name, NEW.value);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION filegc.check_setting_override() IS
    'Internal: refuses a setting override outside the setting''s range, whichever way it is written';
CREATE TRIGGER check_setting_override BEFORE INSERT OR UPDATE ON filegc.setting_overrides
    FOR EACH ROW EXECUTE FUNCTION filegc.check_setting_override();
ALTER TABLE filegc.setting_overrides ENABLE ALWAYS TRIGGER check_setting_override;

-- Views that read settings run it as the caller: settings are no secret, and
-- the sweeper's role reads them without a grant on the tables.
ALTER FUNCTION filegc.setting(text) SECURITY DEFINER;

-- The managed_patterns setting as one case-insensitive regular expression
-- for a whole relative path: each pattern must match its last segment. A
-- pattern that starts with * becomes a plain suffix match, which is much
-- cheaper than anchoring at the start of the name.
CREATE FUNCTION filegc.managed_regex() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT '(' || string_agg(
               CASE WHEN g.pattern LIKE '*%' THEN '' ELSE '(^|/)' END
               || replace(replace(regexp_replace(ltrim(g.pattern, '*'), '([.+^$(){}|\[\]\\])', '\\\1', 'g'),
                                  '*', '[^/]*'), '?', '[^/]')
               || '$',
               '|') || ')'
      FROM (SELECT trim(p) AS pattern
              FROM unnest(string_to_array(filegc.setting('managed_patterns'), ',')) AS p) AS g
$$;

-- The last segment of a path (its file name), without a regular expression:
-- the views compute it for every file.
CREATE FUNCTION filegc.file_name(path text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT reverse(split_part(reverse(path), '/', 1))
$$;

------------------------------------------------------------------------------
-- Tombstone paths
------------------------------------------------------------------------------

-- Whether no segment of a path is over 255 bytes (a file name's limit).
CREATE FUNCTION filegc.segments_fit(path text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT NOT EXISTS (SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(path, '/')) AS s
                        WHERE pg_catalog.octet_length(s) > 255)
$$;
COMMENT ON FUNCTION filegc.segments_fit(text) IS
    'Internal: whether no segment of a path is over 255 bytes';

-- Whether a path is short enough to be a reference: no segment over 255
-- bytes and at most 2,048 bytes in all (an index entry's), the limits of
-- path_rules::validate_relative. The tombstones' CHECK runs it at every
-- UPDATE, so it is written to be inlined there: no subquery and no STRICT
-- (a SQL function with either is executed as a call, 12 us a row), and a
-- path of at most 255 bytes, which cannot hold a longer segment, is not
-- split at all.
CREATE FUNCTION filegc.path_fits(path text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.octet_length(path) <= 255
        OR (pg_catalog.octet_length(path) <= 2048 AND filegc.segments_fit(path))
$$;
COMMENT ON FUNCTION filegc.path_fits(text) IS
    'Internal: whether a path is short enough to be a reference (segments of at most 255 bytes, 2048 in all)';

-- Every function that writes a tombstone validates its path, but a superuser
-- can INSERT one directly; a path the sweeper must refuse would then be
-- claimed and failed again and again. The rules are those of
-- path_rules::validate_relative (not empty, no backslash, not absolute, no
-- empty, . or .. segment, not too long; text cannot hold NUL). NOT VALID:
-- tombstones an older version wrote stay readable history.
ALTER TABLE filegc.tombstones ADD CONSTRAINT tombstones_path_is_relative CHECK (
    path <> ''
    AND strpos(path, '\') = 0
    AND left(path, 1) <> '/'
    AND ('/' || path || '/') !~ '/\.{0,2}/'
    AND filegc.path_fits(path)
) NOT VALID;

------------------------------------------------------------------------------
-- What the sweeper reports: runs, the inventory, the volume's capacity.
------------------------------------------------------------------------------

CREATE TABLE filegc.runs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('scan', 'sweep', 'purge', 'orphan_cleanup', 'retention_cleanup')),
    worker text NOT NULL,
    volume_path text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    files_seen bigint NOT NULL DEFAULT 0,
    files_deleted bigint NOT NULL DEFAULT 0,
    bytes_freed bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE filegc.runs IS 'Every scan, sweep, trash purge and scheduled cleanup a sweeper ran; read filegc.sweeps';
CREATE INDEX runs_kind_finished ON filegc.runs (kind, finished_at);

-- The files of the latest complete scan. `managed` is whether the file
-- matched managed_patterns when filegc.finish_scan recorded it: matching the
-- patterns' regular expression costs about a second per million files,
-- which every report paid. It holds only while the patterns are those of
-- filegc.inventory_managed_by; NULL, or other patterns, and the reports
-- match the path themselves (see filegc.path_states).
CREATE TABLE filegc.inventory (
    path text PRIMARY KEY,
    size_bytes bigint NOT NULL,
    modified_at timestamptz NOT NULL,
    first_seen_at timestamptz NOT NULL,
    scan_id bigint NOT NULL,
    managed boolean,
    -- A bucket's object's ETag as the listing gave it: a sweep deletes that
    -- version only (NULL on a volume, and where the service sent none).
    etag text
);
COMMENT ON TABLE filegc.inventory IS 'The files of the latest complete scan; read filegc.files';

-- The managed_patterns the inventory's managed flags were computed with. Not
-- kept in dumps: after a restore the reports match paths themselves until
-- the next scan computes the flags again.
CREATE TABLE filegc.inventory_managed_by (
    patterns text NOT NULL
);
CREATE UNIQUE INDEX inventory_managed_by_one_row ON filegc.inventory_managed_by ((true));
COMMENT ON TABLE filegc.inventory_managed_by IS
    'The managed_patterns setting the managed flags of filegc.inventory were computed with';

-- A scan in progress COPYs its files here; filegc.finish_scan merges them
-- into the inventory in one transaction, so readers never see half a scan.
CREATE UNLOGGED TABLE filegc.inventory_staging (
    scan_id bigint NOT NULL,
    path text NOT NULL,
    size_bytes bigint NOT NULL,
    modified_at timestamptz NOT NULL,
    etag text
);
COMMENT ON TABLE filegc.inventory_staging IS 'Where a running scan COPYs the files it finds, before filegc.finish_scan';

-- What a finishing scan changes in the inventory: the files that appeared,
-- vanished or changed. filegc.finish_scan fills it from one join of the
-- scan with the inventory and then touches only these rows; in a rescan
-- they are a few among millions. Only finish_scan uses it, one at a time.
CREATE UNLOGGED TABLE filegc.scan_changes (
    path text NOT NULL,
    vanished boolean NOT NULL,
    appeared boolean NOT NULL,
    size_bytes bigint,
    modified_at timestamptz,
    etag text
);
COMMENT ON TABLE filegc.scan_changes IS 'Work table of filegc.finish_scan: the files a scan found new, changed or gone';

CREATE TABLE filegc.volume_reports (
    id bigserial PRIMARY KEY,
    reported_at timestamptz NOT NULL DEFAULT now(),
    worker text NOT NULL,
    volume_path text NOT NULL,
    total_bytes bigint NOT NULL,
    used_bytes bigint NOT NULL,
    free_bytes bigint NOT NULL,
    trash_files bigint NOT NULL,
    trash_bytes bigint NOT NULL
);
COMMENT ON TABLE filegc.volume_reports IS 'The volume''s capacity (statvfs) and trash, as each scan and sweep saw it';

ALTER TABLE filegc.tombstones
    ADD COLUMN restored_at timestamptz,
    ADD COLUMN purged_at timestamptz;

-- Claiming becomes a HOT update (schema.sql): the open tombstones' indexes
-- read finished_at instead of the state, and pages keep room for a second
-- version of their rows (rows written before keep their place).
ALTER TABLE filegc.tombstones SET (fillfactor = 50);
DROP INDEX filegc.tombstones_open_path;
CREATE UNIQUE INDEX tombstones_open_path ON filegc.tombstones (path) WHERE finished_at IS NULL;
DROP INDEX filegc.tombstones_due;
CREATE INDEX tombstones_due ON filegc.tombstones (due_at) WHERE finished_at IS NULL;

-- What a deletion can come to. A file is also kept when an invalid
-- reference may name it (skipped_protected) and when filegc no longer
-- manages it (skipped_unmanaged), whatever the patterns were when its
-- deletion was scheduled.
ALTER TABLE filegc.tombstones DROP CONSTRAINT tombstones_outcome_check;
ALTER TABLE filegc.tombstones ADD CONSTRAINT tombstones_outcome_check
    CHECK (outcome IN ('deleted', 'trashed', 'already_gone', 'skipped_referenced', 'skipped_protected', 'skipped_unmanaged'));

------------------------------------------------------------------------------
-- The writers' side: notes
--
-- Whatever the application's transaction does with tracked values, filegc
-- writes only into filegc.notes: a table without a unique index or a row
-- that anyone updates, so the application's writes never wait for one
-- another because of filegc, never deadlock through it, and never fail with
-- a serialization error at REPEATABLE READ or SERIALIZABLE. The sweeper
-- turns the notes into deletions, cancellations, restore requests and
-- recorded invalid values (filegc.process_notes) before it claims anything.
--
-- This replaces points 4 and 5 of the lock protocol (references.sql): a
-- trigger no longer decides whether a path that left its row is
-- referenced elsewhere, with the ORDER locks that made that decision
-- accurate between overlapping writers. It notes every such path, and the
-- sweeper asks after the note's transaction committed, with a fresh
-- snapshot: a path another open transaction is removing too is noted again
-- by that transaction, so none is missed. Points 1 to 3 and 6 stand.
------------------------------------------------------------------------------

CREATE TABLE filegc.notes (
    -- 'r': the path left a row; 'e': the path entered a row while a
    -- deletion of it was open or a copy of it in the trash, or the writer
    -- could not tell; 'i': a stored value that is no reference.
    kind "char" NOT NULL,
    path text,
    -- For 'i': the file name the value may mean (filegc.protected_name).
    name text,
    table_name regclass,
    column_name name,
    value text,
    problem text,
    noted_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE filegc.notes IS
    'Internal: what the triggers saw in the application''s transactions, until the sweeper processes it (filegc.process_notes)';
-- The final check asks whether an invalid value noted moments ago may name
-- the file it is about to delete.
CREATE INDEX notes_invalid_name ON filegc.notes (name) WHERE kind = 'i';

-- Keeps filegc.tracked in step when a tracked table or column is dropped
-- (replaced here, before anything below drops an object and fires it, as it
-- now reads filegc.invalid_values). The files that only the dropped rows
-- referenced become orphans: the orphan cleanup finds them (the rows are
-- gone before this runs, so they cannot be listed here).
CREATE OR REPLACE FUNCTION filegc.forget_dropped() RETURNS event_trigger
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
    DELETE FROM filegc.invalid_values i
     WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = i.table_name);
END
$$;

-- Stored values that cannot be references, once processed. The table
-- holds what filegc.invalid_refs showed in 0.1.0; the view of that name now
-- adds the values noted since. A value of any length is recorded: rows are
-- told apart by a digest of it, as an index on the value itself would refuse
-- long ones.
ALTER TABLE filegc.invalid_refs RENAME TO invalid_values;
ALTER TABLE filegc.invalid_values DROP CONSTRAINT invalid_refs_pkey;
-- PostgreSQL 18 records NOT NULL constraints by names taken from the table
-- they were made in; a new install names them after invalid_values.
DO $$
DECLARE
    old_name name;
BEGIN
    FOR old_name IN SELECT c.conname FROM pg_constraint c
                     WHERE c.conrelid = 'filegc.invalid_values'::regclass AND c.conname LIKE 'invalid\_refs\_%'
    LOOP
        EXECUTE format('ALTER TABLE filegc.invalid_values RENAME CONSTRAINT %I TO %I',
                       old_name, 'invalid_values_' || substr(old_name, length('invalid_refs_') + 1));
    END LOOP;
END
$$;
ALTER TABLE filegc.invalid_values
    ADD COLUMN value_key text,
    ADD COLUMN name text;
COMMENT ON TABLE filegc.invalid_values IS
    'Internal: stored values that cannot be references, as processed from the notes; read filegc.invalid_refs';
COMMENT ON COLUMN filegc.invalid_values.name IS 'The file name the value may mean: such files are never deleted';


-- The file name a stored value may mean, whatever is wrong with it: what
-- its path would be with the query, fragment, URL parts and percent-encoding
-- handled as for a reference, or else its raw text up to a query or
-- fragment; NULL when that cannot be a file name. A file with this name is
-- kept by every deletion route (protection by name): a wrong prefix or a
-- mistyped URL must not turn the files rows mean into deletable ones.
CREATE FUNCTION filegc.protected_name(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN n IN ('', '.', '..') OR octet_length(n) > 255 THEN NULL ELSE n END
      FROM (SELECT filegc.file_name(coalesce(
                       filegc.ref_path(value, '{/}'),
                       replace(split_part(split_part(value, '?', 1), '#', 1), '\', '/'))) AS n) AS named
$$;
COMMENT ON FUNCTION filegc.protected_name(text) IS
    'The file name a stored value that is no reference may mean; files with that name are never deleted';

UPDATE filegc.invalid_values SET value_key = md5(value), name = filegc.protected_name(value);
ALTER TABLE filegc.invalid_values ALTER COLUMN value_key SET NOT NULL;
CREATE UNIQUE INDEX invalid_values_key ON filegc.invalid_values (table_name, column_name, value_key);
CREATE INDEX invalid_values_name ON filegc.invalid_values (name);

-- What filegc.track() finds in a column it starts tracking (the triggers
-- write notes instead).
CREATE OR REPLACE FUNCTION filegc.record_invalid_refs(tbl regclass, columns name[], stored_values text[], problems text[])
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO filegc.invalid_values AS i (table_name, column_name, value, problem, value_key, name)
    SELECT DISTINCT ON (c, md5(v)) tbl, c, v, p, md5(v), filegc.protected_name(v)
      FROM unnest(columns, stored_values, problems) AS u(c, v, p)
        ON CONFLICT (table_name, column_name, value_key)
        DO UPDATE SET last_seen_at = now(), problem = EXCLUDED.problem
$$;

CREATE VIEW filegc.invalid_refs AS
SELECT v.table_name, v.column_name, v.value, v.problem, v.first_seen_at, v.last_seen_at
  FROM filegc.invalid_values v
UNION ALL
SELECT n.table_name, n.column_name, n.value, min(n.problem), min(n.noted_at), max(n.noted_at)
  FROM filegc.notes n
 WHERE n.kind = 'i'
   AND NOT EXISTS (SELECT FROM filegc.invalid_values v
                    WHERE v.table_name = n.table_name AND v.column_name = n.column_name AND v.value_key = md5(n.value))
 GROUP BY n.table_name, n.column_name, n.value;
COMMENT ON VIEW filegc.invalid_refs IS
    'Values in tracked columns that cannot name a file under the volume root: never references, and the file names they may mean are never deleted';

-- Rows written into the view go to the table: a dump of 0.1.0, where
-- invalid_refs was the table, restores its rows into this release
-- (pg_dump writes CREATE EXTENSION without a version, so the restore
-- creates the newest one and then COPYs into filegc.invalid_refs).
CREATE FUNCTION filegc.invalid_refs_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO filegc.invalid_values AS i
                (table_name, column_name, value, problem, first_seen_at, last_seen_at, value_key, name)
    VALUES (NEW.table_name, NEW.column_name, NEW.value, NEW.problem,
            coalesce(NEW.first_seen_at, now()), coalesce(NEW.last_seen_at, now()),
            md5(NEW.value), filegc.protected_name(NEW.value))
        ON CONFLICT (table_name, column_name, value_key)
        DO UPDATE SET first_seen_at = least(i.first_seen_at, EXCLUDED.first_seen_at),
                      last_seen_at = greatest(i.last_seen_at, EXCLUDED.last_seen_at);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION filegc.invalid_refs_insert() IS
    'Internal: rows written into the view filegc.invalid_refs (a restored dump of 0.1.0) go to filegc.invalid_values';
CREATE TRIGGER invalid_refs_insert INSTEAD OF INSERT ON filegc.invalid_refs
    FOR EACH ROW EXECUTE FUNCTION filegc.invalid_refs_insert();

-- Every file name an invalid reference may mean, processed or not.
CREATE VIEW filegc.protected_names AS
SELECT v.name FROM filegc.invalid_values v WHERE v.name IS NOT NULL
UNION
SELECT n.name FROM filegc.notes n WHERE n.kind = 'i' AND n.name IS NOT NULL;
COMMENT ON VIEW filegc.protected_names IS
    'Internal: file names that an invalid reference (filegc.invalid_refs) may mean; no route deletes a file with such a name';

-- The advisory-lock class of the locks on the file names invalid references
-- may mean ('fgc4'): a writer holds SHARED on each name it stores, and the
-- final check tries EXCLUSIVE on the name of each file it deletes, as for
-- paths (points 1 to 3 of the lock protocol).
CREATE FUNCTION filegc.name_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1718052660 $$;
COMMENT ON FUNCTION filegc.name_lock_class() IS
    'Internal: the advisory-lock class of file names that invalid references may mean';

-- The count of a transaction's path locks lives in a setting, which any role
-- can change: only a count this function could have written is trusted, and
-- anything else counts as escalated (the escalation lock is taken, again),
-- so no value makes a writer skip its locks.
CREATE OR REPLACE FUNCTION filegc.reserve_path_locks(wanted integer) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    counted text := current_setting('filegc.path_locks_taken', true);
    taken integer := CASE WHEN coalesce(counted, '') = '' THEN 0
                          WHEN counted ~ '^[0-9]{1,9}$' THEN counted::integer
                          ELSE -1 END;
BEGIN
    IF taken < 0 OR taken + wanted > filegc.max_path_locks() THEN
        PERFORM pg_advisory_xact_lock_shared(filegc.escalation_lock_class(), 0);
        PERFORM set_config('filegc.path_locks_taken', '-1', true);
        RETURN false;
    END IF;
    PERFORM set_config('filegc.path_locks_taken', (taken + wanted)::text, true);
    RETURN true;
END
$$;

-- How long a session that woke the sweeper for paths leaving rows lets its
-- later releases wait instead of waking it again. Every NOTIFY takes, at
-- commit, a lock all notifying commits of the database take in turn, which
-- cost the application's writes about 7 % (docs/performance.md); a sweeper
-- woken looks again twice this long later (sweeper/src/run.rs), so a path
-- released in a transaction that commits within this pause of its trigger
-- is still taken in at once. Paths entering rows always wake it: a file
-- that must come back from the trash should not wait.
CREATE FUNCTION filegc.release_wake_pause() RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT interval '1 second' $$;

-- Wakes a sweeper that listens (filegc run), once per transaction. With
-- unless_recent, not when this session woke it less than
-- filegc.release_wake_pause() ago, in a transaction that committed (a value
-- set_config writes goes with an aborted transaction). The time lives in a
-- setting any role can change: one this function could not have written
-- wakes the sweeper. A transaction that sent a NOTIFY cannot PREPARE
-- TRANSACTION; where prepared transactions are enabled, the sweeper finds
-- the notes at its next interval instead.
CREATE FUNCTION filegc.wake_sweeper(unless_recent boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    woke text := current_setting('filegc.woke_sweeper_at', true);
    now_at numeric := extract(epoch FROM clock_timestamp());
BEGIN
    IF current_setting('max_prepared_transactions') <> '0' THEN
        RETURN;
    END IF;
    IF unless_recent AND woke ~ '^[0-9]{1,12}(\.[0-9]{1,9})?$'
       AND now_at - woke::numeric >= 0
       AND now_at - woke::numeric < extract(epoch FROM filegc.release_wake_pause()) THEN
        RETURN;
    END IF;
    PERFORM set_config('filegc.woke_sweeper_at', now_at::text, false);
    PERFORM pg_notify('filegc', 'notes');
END
$$;

-- Which of the paths entering a row to note: every one when note_every,
-- else (at READ COMMITTED) those a deletion of which may be open or whose
-- file may wait in the trash; the sweeper then cancels the deletion or
-- brings the file back. A scalar subquery per path, so that each is one
-- index probe (EXISTS became a hash of every deletion in a generic plan).
-- A plain SQL function, without SET or STRICT, so that the planner inlines
-- it into the statement that calls it (the Rust triggers' prepared INSERT);
-- inlined, it is parsed with the caller's search_path, hence the qualified
-- operators.
CREATE FUNCTION filegc.entering_paths_to_note(paths text[], note_every boolean) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p FROM pg_catalog.unnest(paths) AS p
     WHERE note_every
        OR (SELECT true FROM filegc.tombstones t
             WHERE t.path OPERATOR(pg_catalog.=) p
               AND (t.state OPERATOR(pg_catalog.=) ANY ('{pending,claimed}'::text[])
                    OR (t.state OPERATOR(pg_catalog.=) 'done'
                        AND t.outcome OPERATOR(pg_catalog.=) 'trashed'
                        AND t.restored_at IS NULL AND t.purged_at IS NULL))
             LIMIT 1)
$$;
COMMENT ON FUNCTION filegc.entering_paths_to_note(text[], boolean) IS
    'Internal, for the triggers: the paths entering a row that a deletion may be open of (all of them when note_every)';

-- (Column names come as text: a name[] argument would give the call the
-- collation "C", and the path comparisons below could not use the
-- tombstones' index, which has the database's.)
-- Point 1 of the lock protocol, and the notes of what entered a row: the
-- SHARED lock of every path entering a row and of every file name an
-- invalid value entering it may mean. At READ COMMITTED a path is noted only
-- when a deletion of it may be open or its file in the trash (the sweeper
-- then cancels the deletion or brings the file back; a path that left a row
-- moments ago is not scheduled at all while a row references it again); at
-- REPEATABLE READ and SERIALIZABLE the writer reads nothing that other
-- transactions write, so it notes every path and lets the sweeper sort them
-- out.
CREATE FUNCTION filegc.note_entered(tbl regclass, paths text[], invalid_columns text[], invalid_values text[],
                                    invalid_problems text[])
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    names text[] := '{}';
    wanted integer;
    noted text[];
BEGIN
    -- Most rows bring no invalid value: no query for them.
    IF coalesce(cardinality(invalid_values), 0) > 0 THEN
        names := ARRAY(SELECT DISTINCT n FROM unnest(invalid_values) AS v, filegc.protected_name(v) AS n
                        WHERE n IS NOT NULL);
    END IF;
    wanted := coalesce(cardinality(paths), 0) + cardinality(names);
    IF wanted > 0 AND filegc.reserve_path_locks(wanted) THEN
        PERFORM pg_advisory_xact_lock_shared(filegc.path_lock_class(), filegc.path_lock_key(p)) FROM unnest(paths) AS p;
        IF cardinality(names) > 0 THEN
            PERFORM pg_advisory_xact_lock_shared(filegc.name_lock_class(), hashtext(n)) FROM unnest(names) AS n;
        END IF;
    END IF;
    IF coalesce(cardinality(paths), 0) > 0 THEN
        noted := ARRAY(SELECT p FROM filegc.entering_paths_to_note(
                                        paths, current_setting('transaction_isolation') <> 'read committed') AS p);
        IF cardinality(noted) > 0 THEN
            INSERT INTO filegc.notes (kind, path) SELECT 'e', p FROM unnest(noted) AS p;
            PERFORM filegc.wake_sweeper(false);
        END IF;
    END IF;
    IF coalesce(cardinality(invalid_values), 0) > 0 THEN
        INSERT INTO filegc.notes (kind, table_name, column_name, value, problem, name)
        SELECT 'i', tbl, c, v, p, filegc.protected_name(v)
          FROM unnest(invalid_columns, invalid_values, invalid_problems) AS u(c, v, p);
    END IF;
END
$$;
COMMENT ON FUNCTION filegc.note_entered(regclass, text[], text[], text[], text[]) IS
    'Internal, for the triggers: locks and notes the paths and invalid values that entered a row';

-- A stored value as a warning shows it: a value can be megabytes long.
CREATE FUNCTION filegc.shown_value(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN length(value) <= 200 THEN value
                ELSE left(value, 200) || format('... (%s characters)', length(value)) END
$$;
COMMENT ON FUNCTION filegc.shown_value(text) IS 'Internal: a stored value as a warning shows it, at most 200 characters';

-- Notes paths that left rows; the sweeper schedules those no row references
-- any more.
CREATE FUNCTION filegc.note_released(paths text[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    noted integer;
BEGIN
    INSERT INTO filegc.notes (kind, path) SELECT DISTINCT 'r', p FROM unnest(paths) AS p WHERE p IS NOT NULL;
    GET DIAGNOSTICS noted = ROW_COUNT;
    IF noted > 0 THEN
        PERFORM filegc.wake_sweeper(true);
    END IF;
    RETURN noted;
END
$$;
COMMENT ON FUNCTION filegc.note_released(text[]) IS
    'Internal, for the triggers: notes paths that left rows';

-- When a trigger cannot read a tracked column (renamed without the event
-- trigger that follows renames), it cannot tell which paths its row holds:
-- it holds every path instead, until its transaction ends, so the final
-- check waits for it, and warns. The application's write goes on.
CREATE FUNCTION filegc.hold_every_path(tbl regclass, col name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(filegc.escalation_lock_class(), 0);
    -- Once per transaction (a setting local to it): every row of a bulk
    -- write would repeat the warning.
    IF current_setting('filegc.warned_holding_every_path', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('filegc.warned_holding_every_path', 'yes', true);
        RAISE WARNING 'filegc: % has no column "%" any more, which filegc tracks; this transaction holds off every deletion until it ends',
            tbl, col
            USING HINT = 'SELECT filegc.sync_tracking() follows a renamed column; filegc.untrack() forgets a dropped one.';
    END IF;
END
$$;
COMMENT ON FUNCTION filegc.hold_every_path(regclass, name) IS
    'Internal, for the triggers: holds off every deletion while a tracked column cannot be read';

-- BEFORE TRUNCATE: the rows are still there, so list their paths.
CREATE OR REPLACE FUNCTION filegc.release_table(tbl regclass) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN filegc.note_released(
        filegc.paths_in(tbl, ARRAY(SELECT t FROM filegc.tracked t WHERE t.table_name = tbl)));
END
$$;

DROP FUNCTION filegc.apply_reference_changes(text[], text[]);
DROP FUNCTION filegc.lock_entering_paths(text[]);
DROP FUNCTION filegc.schedule_unreferenced(text[]);
DROP FUNCTION filegc.release_paths(text[], regclass);
DROP FUNCTION filegc.contested_leaving_paths(text[]);
DROP FUNCTION filegc.order_lock_class();

-- The notes become what they mean, in a READ COMMITTED transaction:
-- invalid values are recorded, released paths scheduled after
-- unreferenced_delay (counted from when they left their rows), and paths
-- that entered rows and are referenced now cancel their pending deletion
-- and ask their trashed copy back. Two processors at once (two sweepers)
-- take different notes and never wait for each other's: each writes in path
-- order, so neither can hold what the other waits for. Processed in either
-- order, a release and a later entry of the same path can at worst leave a
-- deletion open that the final check then skips.
CREATE FUNCTION filegc.process_notes() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    released text[];
    released_at timestamptz[];
    unreferenced text[];
    entered text[];
    delay interval;
    wanted text[];
BEGIN
    WITH taken AS (
        DELETE FROM filegc.notes n
         WHERE n.ctid = ANY (ARRAY(SELECT x.ctid FROM filegc.notes x FOR UPDATE SKIP LOCKED))
        RETURNING n.*
    ), recorded AS (
        INSERT INTO filegc.invalid_values AS v (table_name, column_name, value, problem, first_seen_at, last_seen_at,
                                                value_key, name)
        SELECT DISTINCT ON (t.table_name, t.column_name, md5(t.value))
               t.table_name, t.column_name, t.value, t.problem, t.noted_at, t.noted_at, md5(t.value), t.name
          FROM taken t
         WHERE t.kind = 'i' AND (SELECT true FROM pg_class c WHERE c.oid = t.table_name)
         ORDER BY t.table_name, t.column_name, md5(t.value), t.noted_at DESC
            ON CONFLICT (table_name, column_name, value_key)
            DO UPDATE SET last_seen_at = greatest(v.last_seen_at, EXCLUDED.last_seen_at), problem = EXCLUDED.problem
    )
    SELECT array_agg(t.path) FILTER (WHERE t.kind = 'r'),
           array_agg(t.noted_at) FILTER (WHERE t.kind = 'r'),
           array_agg(DISTINCT t.path) FILTER (WHERE t.kind = 'e')
      INTO released, released_at, entered
      FROM taken t;

    IF released IS NOT NULL THEN
        -- Scheduled when no committed row references them now: a note is
        -- read only after its transaction committed, so a row that still
        -- held the path then either is seen here or was being deleted by a
        -- transaction that notes the path itself.
        unreferenced := filegc.unreferenced_among(ARRAY(SELECT DISTINCT p FROM unnest(released) AS p));
        delay := filegc.setting('unreferenced_delay')::interval;
        INSERT INTO filegc.tombstones (path, reason, created_at, due_at)
        SELECT r.path, 'unreferenced', min(r.noted_at), min(r.noted_at) + delay
          FROM unnest(released, released_at) AS r(path, noted_at)
         WHERE r.path IN (SELECT u FROM unnest(unreferenced) AS u)
         GROUP BY r.path
         ORDER BY r.path
            ON CONFLICT (path) WHERE finished_at IS NULL DO NOTHING;
    END IF;

    IF entered IS NOT NULL THEN
        unreferenced := filegc.unreferenced_among(entered);
        -- EXCEPT, not NOT IN: NOT IN over an array larger than the work
        -- memory compares every path with every unreferenced one.
        wanted := ARRAY(SELECT p FROM unnest(entered) AS p EXCEPT SELECT u FROM unnest(unreferenced) AS u);
        UPDATE filegc.tombstones t SET state = 'cancelled', finished_at = now()
          FROM (SELECT x.id FROM filegc.tombstones x
                 WHERE x.path = ANY (wanted) AND x.state = 'pending'
                 ORDER BY x.path, x.id FOR UPDATE SKIP LOCKED) AS l
         WHERE t.id = l.id;
        UPDATE filegc.tombstones t SET restore_requested_at = now()
          FROM (SELECT x.id FROM filegc.tombstones x
                 WHERE x.path = ANY (wanted) AND x.state = 'done' AND x.outcome = 'trashed'
                   AND x.restore_requested_at IS NULL AND x.restored_at IS NULL AND x.purged_at IS NULL
                 ORDER BY x.path, x.id FOR UPDATE SKIP LOCKED) AS l
         WHERE t.id = l.id;
        IF FOUND THEN
            PERFORM pg_notify('filegc', 'restore');
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION filegc.process_notes() IS
    'Sweeper protocol: turns the triggers'' notes into deletions, cancellations, restore requests and recorded invalid values';

------------------------------------------------------------------------------
-- Tracking columns
------------------------------------------------------------------------------

-- The column's number, to follow a rename: its name is what every query and
-- every dump uses, its number what a rename keeps.
ALTER TABLE filegc.tracked ADD COLUMN attnum smallint;
COMMENT ON COLUMN filegc.tracked.attnum IS 'The column''s number, by which filegc.sync_tracking() follows a rename';
UPDATE filegc.tracked t SET attnum = a.attnum
  FROM pg_attribute a
 WHERE a.attrelid = t.table_name AND a.attname = t.column_name AND NOT a.attisdropped;

-- (Re)creates the triggers of a table from its tracked columns: one for
-- INSERT and DELETE; one for UPDATE whenever the row changed, however it
-- changed (an UPDATE OF its columns missed what a BEFORE trigger of the
-- application changed), which then compares the tracked values itself; one
-- BEFORE TRUNCATE. The UPDATE trigger's condition names no column (a
-- comparison of the whole rows' images, which any column type allows), so
-- that the application can still change a tracked column's type or drop it.
-- All fire always, in replica-mode sessions too (logical replication, some
-- bulk loads). Their names carry the table's number, so that a tracked
-- table attached as a partition of another tracked table keeps its own next
-- to the ones the partition inherits.
CREATE OR REPLACE FUNCTION filegc.install_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    own name;
    arguments text;
    names text[] := ARRAY[format('filegc_references_%s', tbl::oid), format('filegc_updates_%s', tbl::oid),
                          format('filegc_truncate_%s', tbl::oid)];
    trigger_name text;
    -- The statements below fire the event trigger that follows schema
    -- changes (filegc.sync_tracking), which would re-create these very
    -- triggers halfway through: it stands aside while filegc itself changes
    -- the schema.
    outer_change text := current_setting('filegc.changing_schema', true);
BEGIN
    PERFORM set_config('filegc.changing_schema', 'on', true);
    FOR own IN SELECT g.tgname FROM pg_trigger g
                WHERE g.tgrelid = tbl AND g.tgparentid = 0
                  AND g.tgfoid IN ('filegc.references_trigger()'::regprocedure, 'filegc.truncate_trigger()'::regprocedure)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', own, tbl);
    END LOOP;
    -- Trigger arguments, per column: name, 'array' or 'scalar', the number of
    -- prefixes, then the prefixes.
    SELECT string_agg(concat_ws(', ',
                          quote_literal(t.column_name),
                          quote_literal(CASE WHEN t.is_array THEN 'array' ELSE 'scalar' END),
                          quote_literal(cardinality(t.prefixes)),
                          (SELECT string_agg(quote_literal(p), ', ') FROM unnest(t.prefixes) AS p)),
                      ', ' ORDER BY t.column_name)
      INTO arguments
      FROM filegc.tracked t
     WHERE t.table_name = tbl;
    IF arguments IS NULL THEN
        PERFORM set_config('filegc.changing_schema', coalesce(outer_change, ''), true);
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION filegc.references_trigger(%s)', names[1], tbl, arguments);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s '
                   'FOR EACH ROW WHEN (OLD *<> NEW) EXECUTE FUNCTION filegc.references_trigger(%s)', names[2], tbl, arguments);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION filegc.truncate_trigger()', names[3], tbl);
    FOREACH trigger_name IN ARRAY names LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, trigger_name);
    END LOOP;
    PERFORM set_config('filegc.changing_schema', coalesce(outer_change, ''), true);
END
$$;

-- Stops tracking one column of one table: its triggers and the index filegc
-- made go, and the paths that lost their last reference are noted for
-- deletion, which the circuit breaker refuses past max_delete_fraction of
-- the column's paths unless `force`. Returns how many it noted.
CREATE FUNCTION filegc.forget_column(tbl regclass, col name, force boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    removed filegc.tracked;
    candidates text[] := '{}';
    doomed text[];
    fraction numeric;
BEGIN
    DELETE FROM filegc.tracked t WHERE t.table_name = tbl AND t.column_name = col RETURNING * INTO removed;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    PERFORM filegc.install_triggers(tbl);
    IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = col AND NOT a.attisdropped) THEN
        candidates := filegc.paths_in(tbl, ARRAY[removed]);
    END IF;
    IF NOT force AND cardinality(candidates) > 0 THEN
        doomed := filegc.unreferenced_among(candidates);
        fraction := filegc.setting('max_delete_fraction')::numeric;
        IF cardinality(doomed) > fraction * cardinality(candidates) THEN
            RAISE EXCEPTION 'filegc: circuit breaker: no longer tracking %.% would schedule % of its % paths for deletion, more than max_delete_fraction (%)',
                tbl, col, cardinality(doomed), cardinality(candidates), fraction
                USING HINT = 'If their files should go, call again with force => true.';
        END IF;
    END IF;
    IF removed.index_created_by_filegc THEN
        EXECUTE format('DROP INDEX IF EXISTS %I.%I',
                       (SELECT nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl),
                       removed.index_name);
    END IF;
    RETURN filegc.note_released(candidates);
END
$$;
COMMENT ON FUNCTION filegc.forget_column(regclass, name, boolean) IS
    'Internal: what filegc.untrack() does for one table';

DROP FUNCTION filegc.track(regclass, name, text[]);
CREATE FUNCTION filegc.track(tbl regclass, col name, prefixes text[] DEFAULT '{}', force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    relation_kind "char";
    column_type regtype;
    column_number smallint;
    column_is_array boolean;
    previous filegc.tracked;
    index_found name;
    index_created boolean := false;
    expression text;
    stored_values text;
    reference_count bigint;
    references_before bigint;
    changed bigint;
    invalidated bigint;
    child regclass;
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
    -- File names are UTF-8 on the volume, to the sweeper and to the Rust
    -- path rules; in another encoding a stored value may not be, and the
    -- application's write would fail on it.
    IF getdatabaseencoding() <> 'UTF8' THEN
        RAISE EXCEPTION 'filegc.track: this database''s encoding is %, and filegc needs UTF8', getdatabaseencoding()
            USING HINT = 'Track columns in a UTF8 database (CREATE DATABASE ... ENCODING ''UTF8'', then move the data there).';
    END IF;
    -- One track() or untrack() of a table at a time, and no write meanwhile
    -- (CREATE INDEX and CREATE TRIGGER below would lock as much): two calls
    -- with other prefixes must not leave one's prefixes with the other's index.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    IF filegc.hides_rows_from_filegc(tbl) THEN
        RAISE EXCEPTION 'filegc.track: row-level security on % hides rows from %, the role filegc''s functions run as, so filegc could delete files that rows it cannot see reference',
            tbl, (SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'filegc')
            USING HINT = format('As a superuser: ALTER ROLE %I BYPASSRLS. Or take the row-level security off %s.',
                                (SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'filegc'),
                                tbl);
    END IF;
    SELECT atttypid::regtype, attnum INTO column_type, column_number
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
    stored_values := CASE WHEN column_is_array THEN format('%I::text[]', col) ELSE format('ARRAY[%I::text]', col) END;

    SELECT * INTO previous FROM filegc.tracked t WHERE t.table_name = tbl AND t.column_name = col;
    IF FOUND AND previous.prefixes IS DISTINCT FROM prefixes THEN
        -- New prefixes change what the stored values reference. Every value
        -- whose reference becomes another path or an invalid one takes its
        -- file's reference away: a typo in a prefix would do that to all of
        -- them, so past the circuit breaker's fraction it takes force.
        EXECUTE format('SELECT count(*) FILTER (WHERE o IS NOT NULL), count(*) FILTER (WHERE o IS NOT NULL AND o IS DISTINCT FROM n),'
                       ' count(*) FILTER (WHERE o IS NOT NULL AND n IS NULL)'
                       ' FROM (SELECT filegc.ref_path(v, $1) AS o, filegc.ref_path(v, $2) AS n'
                       ' FROM %s, LATERAL unnest(%s) AS v) AS s', filegc.rows_of(tbl), stored_values)
           INTO references_before, changed, invalidated
          USING previous.prefixes, prefixes;
        IF changed > 0 THEN
            IF NOT force AND changed > filegc.setting('max_delete_fraction')::numeric * references_before THEN
                RAISE EXCEPTION 'filegc.track: the new prefixes change what % of the % references in %.% name (% become invalid references), so their files would lose their references',
                    changed, references_before, tbl, col, invalidated
                    USING HINT = 'Compare the prefixes with the stored values (SELECT ' || quote_ident(col) || ' FROM '
                                 || tbl::text || ' LIMIT 5). If they are right, call filegc.track(..., force => true).';
            END IF;
            RAISE WARNING 'filegc.track: the new prefixes change what % of the % references in %.% name: % become invalid references, % name other paths',
                changed, references_before, tbl, col, invalidated, changed - invalidated;
        END IF;
        PERFORM filegc.forget_column(tbl, col, true);
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

    INSERT INTO filegc.tracked (table_name, column_name, is_array, prefixes, index_name, index_created_by_filegc, attnum)
    VALUES (tbl, col, column_is_array, prefixes, index_found, index_created, column_number)
        ON CONFLICT (table_name, column_name)
        DO UPDATE SET index_name = EXCLUDED.index_name, is_array = EXCLUDED.is_array, attnum = EXCLUDED.attnum;
    PERFORM filegc.install_triggers(tbl);

    -- Values already in the table that cannot be references.
    EXECUTE format(
        'SELECT filegc.record_invalid_refs($1, array_agg($2::name), array_agg(v), array_agg(filegc.ref_path_problem(v, $3))) '
        'FROM (SELECT DISTINCT v FROM %s, LATERAL unnest(%s) AS v) AS s WHERE filegc.ref_path_problem(v, $3) IS NOT NULL',
        filegc.rows_of(tbl), stored_values)
        USING tbl, col, prefixes;

    -- An inheritance child holds rows of the table that the table's triggers
    -- never see: it is tracked too, with the same prefixes.
    FOR child IN SELECT i.inhrelid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = tbl AND NOT c.relispartition
    LOOP
        PERFORM filegc.track(child, col, prefixes, force);
    END LOOP;

    EXECUTE format(CASE WHEN column_is_array
                        THEN 'SELECT coalesce(sum(cardinality(%1$s)), 0) FROM %2$s'
                        ELSE 'SELECT count(*) FROM %2$s WHERE %1$s IS NOT NULL' END,
                   expression, tbl)
       INTO reference_count;
    RETURN reference_count;
END
$$;
COMMENT ON FUNCTION filegc.track(regclass, name, text[], boolean) IS
    'Registers a column that holds file references (text, varchar or text[]), and the same column of the table''s inheritance children: creates or reuses its index, installs the triggers, returns how many references it holds; new prefixes that take references away from more than max_delete_fraction of them need force';

DROP FUNCTION filegc.untrack(regclass, name);
CREATE FUNCTION filegc.untrack(tbl regclass, col name, force boolean DEFAULT false) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    noted integer;
    child regclass;
BEGIN
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    IF NOT EXISTS (SELECT FROM filegc.tracked t WHERE t.table_name = tbl AND t.column_name = col) THEN
        RAISE NOTICE 'filegc.untrack: %.% is not tracked', tbl, col;
        RETURN 0;
    END IF;
    noted := filegc.forget_column(tbl, col, force);
    FOR child IN SELECT i.inhrelid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = tbl AND NOT c.relispartition
                    AND EXISTS (SELECT FROM filegc.tracked t WHERE t.table_name = i.inhrelid AND t.column_name = col)
    LOOP
        noted := noted + filegc.untrack(child, col, force);
    END LOOP;
    RETURN noted;
END
$$;
COMMENT ON FUNCTION filegc.untrack(regclass, name, boolean) IS
    'Stops tracking a column (and the same column of the table''s inheritance children): removes its triggers and the index filegc created; returns how many paths lost their last reference and were scheduled, which past max_delete_fraction of the column''s paths takes force';

REVOKE EXECUTE ON FUNCTION filegc.track(regclass, name, text[], boolean), filegc.untrack(regclass, name, boolean),
                           filegc.forget_column(regclass, name, boolean) FROM PUBLIC;

-- Brings filegc in step with schema changes that would otherwise leave rows
-- or writes out of its sight; the event trigger filegc_sync_tracking runs it
-- after every ALTER TABLE, CREATE TABLE and DROP TRIGGER, and without event
-- triggers (a portable install without a superuser) an operator does, as
-- the final check asks. It follows a renamed column, tracks the inheritance
-- children of tracked tables and a partition detached from one (what holds
-- filegc's index and is not tracked is tracked like the table whose index
-- it copies), makes filegc's triggers fire always again after ENABLE
-- TRIGGER (pg_restore runs it), and re-creates triggers that were dropped
-- or doubled.
-- Disabled triggers stay disabled: the final check names them.
CREATE FUNCTION filegc.sync_tracking() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    item record;
BEGIN
    -- What this does fires the event trigger again, and filegc's own
    -- changes need no following.
    IF current_setting('filegc.changing_schema', true) = 'on' THEN
        RETURN;
    END IF;
    PERFORM set_config('filegc.changing_schema', 'on', true);

    FOR item IN
        SELECT t.table_name, t.column_name, a.attname AS new_name
          FROM filegc.tracked t
          JOIN pg_attribute a ON a.attrelid = t.table_name AND a.attnum = t.attnum AND NOT a.attisdropped
         WHERE NOT EXISTS (SELECT FROM pg_attribute x
                            WHERE x.attrelid = t.table_name AND x.attname = t.column_name AND NOT x.attisdropped)
           AND NOT EXISTS (SELECT FROM filegc.tracked y WHERE y.table_name = t.table_name AND y.column_name = a.attname)
    LOOP
        UPDATE filegc.tracked t SET column_name = item.new_name
         WHERE t.table_name = item.table_name AND t.column_name = item.column_name;
        PERFORM filegc.install_triggers(item.table_name);
    END LOOP;
    UPDATE filegc.tracked t SET attnum = a.attnum
      FROM pg_attribute a
     WHERE a.attrelid = t.table_name AND a.attname = t.column_name AND NOT a.attisdropped
       AND t.attnum IS DISTINCT FROM a.attnum;

    FOR item IN
        SELECT DISTINCT i.inhrelid::regclass AS tbl, t.column_name, t.prefixes
          FROM filegc.tracked t
          JOIN pg_inherits i ON i.inhparent = t.table_name
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE NOT c.relispartition
           AND NOT EXISTS (SELECT FROM filegc.tracked x WHERE x.table_name = i.inhrelid AND x.column_name = t.column_name)
    LOOP
        PERFORM filegc.track(item.tbl, item.column_name, item.prefixes, true);
    END LOOP;

    FOR item IN
        WITH RECURSIVE holding (relid) AS (
            SELECT t.table_name::oid FROM filegc.tracked t
            UNION
            SELECT i.inhrelid FROM holding h JOIN pg_inherits i ON i.inhparent = h.relid
        )
        SELECT DISTINCT i.indrelid::regclass AS tbl, t.column_name, t.prefixes
          FROM pg_depend d
          JOIN pg_index i ON i.indexrelid = d.objid
          JOIN filegc.tracked t
            ON filegc.find_reference_index(i.indrelid, t.column_name, t.is_array, t.prefixes)
               = (SELECT c.relname FROM pg_class c WHERE c.oid = i.indexrelid)
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_proc'::regclass
           AND d.refobjid IN ('filegc.ref_path(text, text[])'::regprocedure, 'filegc.ref_paths(text[], text[])'::regprocedure)
           AND i.indrelid NOT IN (SELECT h.relid FROM holding h)
    LOOP
        PERFORM filegc.track(item.tbl, item.column_name, item.prefixes, true);
    END LOOP;

    FOR item IN
        SELECT g.tgrelid::regclass AS tbl, g.tgname
          FROM pg_trigger g
         WHERE g.tgfoid IN ('filegc.references_trigger()'::regprocedure, 'filegc.truncate_trigger()'::regprocedure)
           AND g.tgenabled IN ('O', 'R')
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', item.tbl, item.tgname);
    END LOOP;

    -- Each tracked table has exactly its three triggers, named for its oid:
    -- a restore from pg_dump creates them under the old table's oid while
    -- this, following the restore's ALTER TABLEs, has already made new ones.
    FOR item IN
        SELECT DISTINCT t.table_name AS tbl
          FROM filegc.tracked t
         WHERE (SELECT true FROM pg_class c WHERE c.oid = t.table_name)
           AND ARRAY(SELECT g.tgname::text FROM pg_trigger g
                      WHERE g.tgrelid = t.table_name AND g.tgparentid = 0
                        AND g.tgfoid IN ('filegc.references_trigger()'::regprocedure,
                                         'filegc.truncate_trigger()'::regprocedure)
                      ORDER BY 1)
               IS DISTINCT FROM ARRAY[format('filegc_references_%s', t.table_name::oid),
                                      format('filegc_truncate_%s', t.table_name::oid),
                                      format('filegc_updates_%s', t.table_name::oid)]
    LOOP
        PERFORM filegc.install_triggers(item.tbl);
    END LOOP;
    PERFORM set_config('filegc.changing_schema', 'off', true);
END
$$;
COMMENT ON FUNCTION filegc.sync_tracking() IS
    'Brings filegc in step with schema changes: follows renamed columns, tracks inheritance children and detached partitions, makes its triggers fire always again and re-creates dropped ones';
REVOKE EXECUTE ON FUNCTION filegc.sync_tracking() FROM PUBLIC;

-- The event trigger's side: a failure here must not fail the application's
-- DDL; the final check names whatever is left.
CREATE FUNCTION filegc.sync_tracking_after_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM filegc.sync_tracking();
EXCEPTION WHEN others THEN
    RAISE WARNING 'filegc: could not bring filegc in step with this schema change: %', SQLERRM
        USING HINT = 'SELECT * FROM filegc.tracking_problems() says what is left to do.';
END
$$;
COMMENT ON FUNCTION filegc.sync_tracking_after_ddl() IS 'Internal: the event trigger filegc_sync_tracking';

------------------------------------------------------------------------------
-- The final check
--
-- Every route that removes a file from the volume or from the trash (a
-- deletion the triggers, a cleanup, schedule_delete or a CLI filter
-- scheduled; the trash purge; empty-trash; the emergency cleanup) decides
-- here, under the locks of point 2 of the lock protocol and with a fresh
-- snapshot, and only while filegc sees every row and every write of the
-- tracked tables.
------------------------------------------------------------------------------

-- Whether row-level security hides rows of `tbl` from the role filegc's
-- functions run as (the owner of schema filegc): its probes would then see
-- only what the policies show.
CREATE FUNCTION filegc.hides_rows_from_filegc(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.relrowsecurity AND NOT (r.rolsuper OR r.rolbypassrls)
           AND (c.relforcerowsecurity OR NOT pg_has_role(r.oid, c.relowner, 'USAGE'))
      FROM pg_class c, pg_namespace n, pg_roles r
     WHERE c.oid = tbl AND n.nspname = 'filegc' AND r.oid = n.nspowner
$$;
COMMENT ON FUNCTION filegc.hides_rows_from_filegc(regclass) IS
    'Internal: whether row-level security hides rows of a table from the role filegc''s functions run as';

-- What keeps filegc from seeing every row and every write of the tracked
-- tables, one line each with its fix: a tracked column that is gone, a
-- table holding rows of a tracked table (a partition, an inheritance child)
-- whose writes would not take the path locks, a table with filegc's index
-- that filegc does not track (a partition detached from a tracked table),
-- and row-level security that hides rows from filegc.
CREATE FUNCTION filegc.tracking_problems() RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    WITH RECURSIVE holding (relid, root) AS (
        SELECT DISTINCT t.table_name::oid, t.table_name::oid
          FROM filegc.tracked t
         WHERE (SELECT true FROM pg_class c WHERE c.oid = t.table_name)
        UNION
        SELECT i.inhrelid, h.root FROM holding h JOIN pg_inherits i ON i.inhparent = h.relid
    ), filegc_triggers AS (
        SELECT g.tgrelid, g.tgname, g.tgenabled, g.tgtype
          FROM pg_trigger g
         WHERE g.tgfoid = (SELECT p.oid FROM pg_proc p
                            WHERE p.pronamespace = 'filegc'::regnamespace AND p.proname = 'references_trigger')
    )
    SELECT format('%s has no column %I, which filegc tracks (renamed or dropped?): SELECT filegc.sync_tracking() follows a rename, SELECT filegc.untrack(%L, %L) forgets the column',
                  t.table_name, t.column_name, t.table_name::text, t.column_name)
      FROM filegc.tracked t
     WHERE (SELECT true FROM pg_class c WHERE c.oid = t.table_name)
       AND NOT EXISTS (SELECT FROM pg_attribute a
                        WHERE a.attrelid = t.table_name AND a.attname = t.column_name AND NOT a.attisdropped)
    UNION ALL
    SELECT format('filegc''s trigger %I on %s is %s, so writes to it would not hold their paths: ALTER TABLE %s ENABLE ALWAYS TRIGGER %I, or SELECT filegc.sync_tracking() for every such trigger',
                  g.tgname, h.relid::regclass,
                  CASE g.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'enabled for replicas only'
                                   ELSE 'enabled for origin sessions only (replica-mode writes skip it)' END,
                  h.relid::regclass, g.tgname)
      FROM holding h JOIN filegc_triggers g ON g.tgrelid = h.relid
     WHERE g.tgenabled <> 'A'
    UNION ALL
    SELECT format('%s holds rows of the tracked table %s but has no filegc trigger for %s, so writes to it would not hold their paths: SELECT filegc.sync_tracking() installs it',
                  h.relid::regclass, h.root::regclass, missing.what)
      FROM holding h,
           LATERAL (SELECT 'INSERT and DELETE' AS what, 12 AS bits UNION ALL SELECT 'UPDATE', 16) AS missing
     WHERE NOT EXISTS (SELECT FROM filegc_triggers g WHERE g.tgrelid = h.relid AND g.tgtype & missing.bits = missing.bits)
    UNION ALL
    SELECT format('%s inherits from %s, whose column %I filegc tracks, but filegc does not track it there: SELECT filegc.sync_tracking() does',
                  h.relid::regclass, t.table_name, t.column_name)
      FROM holding h
      JOIN filegc.tracked t ON t.table_name::oid = h.root
      JOIN pg_class c ON c.oid = h.relid
     WHERE h.relid <> h.root AND NOT c.relispartition
       AND NOT EXISTS (SELECT FROM filegc.tracked x WHERE x.table_name::oid = h.relid AND x.column_name = t.column_name)
    UNION ALL
    SELECT DISTINCT format('%s has an index on filegc''s reference of a column (%s) but filegc does not track it (a partition detached from a tracked table?): SELECT filegc.sync_tracking() tracks it, or drop the index',
                           i.indrelid::regclass, i.indexrelid::regclass)
      FROM pg_depend d
      JOIN pg_index i ON i.indexrelid = d.objid
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_proc'::regclass
       AND d.refobjid IN (SELECT p.oid FROM pg_proc p
                           WHERE p.pronamespace = 'filegc'::regnamespace AND p.proname IN ('ref_path', 'ref_paths'))
       AND i.indrelid NOT IN (SELECT h.relid FROM holding h)
    UNION ALL
    SELECT format('row-level security on %s hides rows from %s, the role filegc''s functions run as: ALTER ROLE %I BYPASSRLS (as a superuser), or take the policies off the table',
                  t.table_name, r.rolname, r.rolname)
      FROM (SELECT DISTINCT x.table_name FROM filegc.tracked x
             WHERE (SELECT true FROM pg_class c WHERE c.oid = x.table_name)) AS t,
           pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
     WHERE n.nspname = 'filegc' AND filegc.hides_rows_from_filegc(t.table_name);
END
$$;
COMMENT ON FUNCTION filegc.tracking_problems() IS
    'What keeps filegc from seeing every row and every write of the tracked tables, each with its fix; deletions and cleanups wait while there is any';

-- Raises an error that lists the problems, while there are any.
CREATE FUNCTION filegc.require_sound_tracking() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problems text;
BEGIN
    SELECT string_agg(p, E'\n') INTO problems FROM filegc.tracking_problems() AS p;
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION E'filegc: deletions and cleanups wait until filegc sees every row and every write of the tracked tables:\n%', problems
            USING HINT = 'SELECT * FROM filegc.tracking_problems() lists what is left to fix.';
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION filegc.require_sound_tracking() IS
    'Internal: raises an error listing filegc.tracking_problems(), while there are any';

-- Which of `paths` no route may delete, and why: 'referenced' when a
-- committed row references the path (a path with a ? or # in it is also
-- kept when what it names as a reference is referenced: a row storing
-- "photo#1.jpg" means the file of that name), 'protected' when an invalid
-- reference may name the file, 'unmanaged' when it does not match
-- managed_patterns now.
CREATE FUNCTION filegc.kept_among(paths text[]) RETURNS TABLE (path text, reason text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    managed text := filegc.managed_regex();
    candidates text[];
    free text[];
BEGIN
    IF coalesce(cardinality(paths), 0) = 0 THEN
        RETURN;
    END IF;
    candidates := ARRAY(SELECT DISTINCT p FROM unnest(paths) AS p WHERE p IS NOT NULL);
    free := filegc.unreferenced_among(ARRAY(
        SELECT p FROM unnest(candidates) AS p
        UNION
        SELECT r FROM unnest(candidates) AS p, filegc.ref_path(p, '{}') AS r WHERE p ~ '[?#]' AND r IS NOT NULL));
    -- Joined with the free paths rather than tested with IN: a hashed IN
    -- holds only as many paths as the work memory, and past that PostgreSQL
    -- compared every path with every free one (hours at 300,000 paths),
    -- where a hash join spills to disk. Each call is planned for its own
    -- arrays (plan_cache_mode above), and the paths are made distinct
    -- beforehand: the planner guesses 200 rows out of a DISTINCT, and with
    -- a guess that small it joined 100,000 paths in a nested loop.
    RETURN QUERY
    SELECT k.p, k.why
      FROM (SELECT u.p,
                   CASE WHEN free_path.f IS NULL OR (u.named IS NOT NULL AND free_named.f IS NULL)
                        THEN 'referenced'
                        WHEN EXISTS (SELECT FROM filegc.invalid_values v WHERE v.name = filegc.file_name(u.p))
                          OR EXISTS (SELECT FROM filegc.notes n WHERE n.kind = 'i' AND n.name = filegc.file_name(u.p))
                        THEN 'protected'
                        WHEN u.p !~* managed THEN 'unmanaged'
                   END AS why
              FROM (SELECT c.p, CASE WHEN c.p ~ '[?#]' THEN filegc.ref_path(c.p, '{}') END AS named
                      FROM unnest(candidates) AS c(p)) AS u
              LEFT JOIN unnest(free) AS free_path(f) ON free_path.f = u.p
              LEFT JOIN unnest(free) AS free_named(f) ON free_named.f = u.named) AS k
     WHERE k.why IS NOT NULL;
END
$$;
COMMENT ON FUNCTION filegc.kept_among(text[]) IS
    'Internal: which of the paths no route may delete, and why (referenced, protected, unmanaged)';

-- Point 2 of the lock protocol: tries, without waiting, the EXCLUSIVE locks
-- a deletion of `path` needs: the path's, its file name's (invalid
-- references), and for a path with a ? or # the path it names as a
-- reference. It is called once per file of every batch, so it is written to
-- be inlined into its caller's query: no SET clause and no STRICT (either
-- would make PostgreSQL parse and plan the body at every call), every name
-- qualified instead, and false, never NULL, for a NULL path.
CREATE FUNCTION filegc.lock_for_deletion(path text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT coalesce(
        pg_catalog.pg_try_advisory_xact_lock(filegc.path_lock_class(), filegc.path_lock_key(path))
        AND pg_catalog.pg_try_advisory_xact_lock(filegc.name_lock_class(), pg_catalog.hashtext(filegc.file_name(path)))
        AND (path OPERATOR(pg_catalog.!~) '[?#]' OR filegc.ref_path(path, '{}') IS NULL
             OR pg_catalog.pg_try_advisory_xact_lock(filegc.path_lock_class(),
                                                     filegc.path_lock_key(filegc.ref_path(path, '{}')))),
        false)
$$;
COMMENT ON FUNCTION filegc.lock_for_deletion(text) IS
    'Internal: tries the exclusive locks a deletion of the path needs; false when a writer holds one';

-- For the sweeper, after each scan: asks back every trashed copy that must
-- be kept now (a committed row references its path, or an invalid reference
-- may name it), whichever route made the reference: a row written at
-- REPEATABLE READ after the deletion, with the triggers disabled, restored
-- from a dump. `trash_paths` are the copies the trash holds (the trash, not
-- the history, says what can come back); returns those no finished
-- deletion recorded, which the sweeper brings back itself, under their
-- locks (check_before_bringing_back).
CREATE FUNCTION filegc.request_restores(trash_paths text[]) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wanted text[] := ARRAY(SELECT k.path FROM filegc.kept_among(trash_paths) AS k
                            WHERE k.reason IN ('referenced', 'protected'));
    recorded text[];
BEGIN
    IF cardinality(wanted) = 0 THEN
        RETURN '{}';
    END IF;
    recorded := ARRAY(SELECT DISTINCT t.path FROM filegc.tombstones t
                       WHERE t.path = ANY (wanted) AND t.state = 'done' AND t.outcome = 'trashed'
                         AND t.restored_at IS NULL AND t.purged_at IS NULL);
    UPDATE filegc.tombstones t SET restore_requested_at = now()
     WHERE t.id IN (SELECT max(l.id) FROM filegc.tombstones l
                     WHERE l.path = ANY (wanted) AND l.state = 'done' AND l.outcome = 'trashed'
                       AND l.restored_at IS NULL AND l.purged_at IS NULL
                     GROUP BY l.path)
       AND t.restore_requested_at IS NULL;
    IF FOUND THEN
        PERFORM pg_notify('filegc', 'restore');
    END IF;
    RETURN ARRAY(SELECT p FROM unnest(trash_paths) AS p
                  WHERE p IN (SELECT w FROM unnest(wanted) AS w) AND NOT (p IN (SELECT r FROM unnest(recorded) AS r)));
END
$$;
COMMENT ON FUNCTION filegc.request_restores(text[]) IS
    'Sweeper protocol: asks back every trashed copy that must be kept now; returns those no deletion recorded';

------------------------------------------------------------------------------
-- File names
------------------------------------------------------------------------------

-- The user id in a name that follows `user_{id}_{unix_ts}[_2].{ext}`.
CREATE FUNCTION filegc.user_id_of(path text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (regexp_match(path, '(?:^|/)user_(\d{1,18})_\d+(?:_2)?\.[^./]+$'))[1]::bigint
$$;
COMMENT ON FUNCTION filegc.user_id_of(text) IS 'The user id of a file named user_{id}_{unix_ts}[_2].{ext}, or NULL';

------------------------------------------------------------------------------
-- Views for people
------------------------------------------------------------------------------

-- The views join the references with the inventory. A PL/pgSQL function
-- tells the planner nothing of its size, and the default guess (1000 rows)
-- makes it loop over one side for every row of the other: say it is large.
ALTER FUNCTION filegc.reference_rows() ROWS 100000;

-- The rows of a tracked table, as a FROM item: a partitioned table with its
-- partitions, any other without its inheritance children, which filegc
-- tracks as tables of their own (filegc.track() and filegc.sync_tracking()
-- see to it, and the final check refuses to go on while one is not).
CREATE FUNCTION filegc.rows_of(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN c.relkind = 'p' THEN tbl::text ELSE 'ONLY ' || tbl::text END FROM pg_class c WHERE c.oid = tbl
$$;
COMMENT ON FUNCTION filegc.rows_of(regclass) IS 'Internal: a tracked table''s rows as a FROM item';

-- The probe is built on every path that leaves a row. As a SQL function
-- with a SET clause it could not be inlined, so its query was parsed and
-- planned at every call; PL/pgSQL keeps the plan for the session. A dropped
-- table is left out by a lookup in pg_class's index, written as a scalar
-- subquery: a join (or EXISTS, which becomes one) hashed all of pg_class at
-- every call.
-- The probe asks each column with a scalar subquery too, for the same
-- reason: the row trigger keeps a generic plan of it, which guesses ten
-- candidate paths, and NOT EXISTS let the planner turn that into a hash
-- anti join against a sequential scan of a small table, computing the
-- reference of every row, dead ones included, for every deleted row. A
-- scalar subquery is planned on its own, per candidate: an index probe.
CREATE OR REPLACE FUNCTION filegc.unreferenced_probe(excluded regclass DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (
        SELECT 'SELECT coalesce(array_agg(candidate.path), ''{}'') FROM unnest($1::text[]) AS candidate(path)'
            || coalesce(' WHERE ' || string_agg(
                   format('(SELECT true FROM %s WHERE %s %s LIMIT 1) IS NULL',
                          filegc.rows_of(t.table_name),
                          filegc.reference_expression(t.column_name, t.is_array, t.prefixes),
                          CASE WHEN t.is_array THEN '@> ARRAY[candidate.path]' ELSE '= candidate.path' END),
                   ' AND ' ORDER BY t.table_name::text, t.column_name), '')
          FROM filegc.tracked t
         WHERE (SELECT true FROM pg_class c WHERE c.oid = t.table_name)
           AND (excluded IS NULL OR t.table_name <> excluded));
END
$$;

-- The functions a row trigger calls run the same few statements for every
-- row, with an array of one or two paths as the parameter. PostgreSQL plans
-- such a statement anew for each call while it guesses that a plan made for
-- the actual array beats a generic one, and planning cost more than the
-- statements themselves; their generic plans are as good.
ALTER FUNCTION filegc.note_entered(regclass, text[], text[], text[], text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.note_released(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.reserve_path_locks(integer) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.unreferenced_among(text[], regclass) SET plan_cache_mode = force_generic_plan;

-- A stored value's path is computed once per row: a flattened subquery
-- would repeat the expression in the select list and in the filter.
CREATE OR REPLACE FUNCTION filegc.reference_rows_query(tbl regclass, columns filegc.tracked[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(
               format(CASE WHEN t.is_array
                           THEN 'SELECT unnest(%s), %L FROM %s'
                           ELSE 'SELECT p, %2$L FROM (SELECT %1$s AS p FROM %3$s OFFSET 0) AS s WHERE p IS NOT NULL' END,
                      filegc.reference_expression(t.column_name, t.is_array, t.prefixes),
                      format('%s.%I', tbl, t.column_name), filegc.rows_of(tbl)),
               ' UNION ALL ')
      FROM unnest(columns) AS t
$$;

-- Every path on the volume or in a row, in one pass: the inventory and the
-- references meet in one full join, so that the statistics count the files
-- and the references to files that are not there without computing the
-- references twice. The inner queries compute each flag once (OFFSET 0 keeps
-- the planner from copying the expressions into every aggregate that uses
-- them). Whether a file is managed comes from the flag the scan stored,
-- while the patterns are the ones it used; otherwise the path is matched
-- here, once, and the orphan flag reuses the result. A file is no orphan
-- when an invalid reference may name it, nor when its name, read as a
-- reference (a ? or # in it starts a query or a fragment), is referenced.
-- While filegc cannot see every row of the tracked tables
-- (filegc.tracking_problems), no report pretends it can: each raises an
-- error that says what to fix.
CREATE VIEW filegc.path_states AS
SELECT f.path,
       f.on_volume,
       f.size_bytes,
       f.modified_at,
       f.first_seen_at,
       f.referenced,
       f.refcount,
       f.managed,
       f.orphan,
       (f.orphan AND f.first_seen_at < now() - f.min_age AND f.modified_at < now() - f.min_age) AS eligible
  FROM (SELECT s.*,
               (s.managed AND NOT s.referenced
                AND NOT EXISTS (SELECT FROM filegc.protected_names p WHERE p.name = filegc.file_name(s.path))
                AND NOT (s.path ~ '[?#]' AND coalesce(filegc.is_referenced(filegc.ref_path(s.path, '{}')), false)))
                   AS orphan
          FROM (SELECT coalesce(i.path, r.path) AS path,
                       (i.path IS NOT NULL) AS on_volume,
                       i.size_bytes, i.modified_at, i.first_seen_at, cfg.min_age,
                       (r.path IS NOT NULL) AS referenced,
                       coalesce(r.refcount, 0) AS refcount,
                       CASE WHEN cfg.flags_hold AND i.managed IS NOT NULL THEN i.managed
                            ELSE coalesce(i.path ~* cfg.managed, false) END AS managed
                  FROM (SELECT filegc.managed_regex() AS managed,
                               filegc.setting('orphan_min_age')::interval AS min_age,
                               (SELECT m.patterns FROM filegc.inventory_managed_by m)
                                   IS NOT DISTINCT FROM filegc.setting('managed_patterns') AS flags_hold
                         WHERE filegc.require_sound_tracking()
                        OFFSET 0) AS cfg
                 CROSS JOIN (filegc.inventory i
                             FULL JOIN (SELECT rr.path, count(*) AS refcount
                                          FROM filegc.reference_rows() AS rr GROUP BY rr.path) AS r
                               ON r.path = i.path)
                OFFSET 0) AS s
        OFFSET 0) AS f;
COMMENT ON VIEW filegc.path_states IS
    'Every path on the volume (on_volume) or referenced by a row, with the flags filegc.files shows; read filegc.files and filegc.missing instead';

-- The parsed name parts are computed only when a query asks for them.
CREATE VIEW filegc.files AS
SELECT f.path,
       f.size_bytes,
       f.modified_at,
       f.first_seen_at,
       f.referenced,
       f.refcount,
       filegc.user_id_of(f.path) AS user_id,
       (f.path ~ '_2\.[^./]+$') AS secondary,
       lower(substring(f.path FROM '\.([^./]+)$')) AS ext,
       f.managed,
       f.orphan,
       f.eligible
  FROM filegc.path_states f
 WHERE f.on_volume;
COMMENT ON VIEW filegc.files IS
    'Every file of the latest scan: whether rows reference it, the user id and kind parsed from its name, whether filegc manages it, and whether it is an (eligible) orphan';

CREATE VIEW filegc.orphans AS
SELECT f.path, f.size_bytes, f.modified_at, f.first_seen_at, f.user_id, f.secondary, f.ext, f.eligible
  FROM filegc.files f
 WHERE f.orphan;
COMMENT ON VIEW filegc.orphans IS
    'Managed files that no row references (a name an invalid reference may mean is never one); eligible when both first seen and modified longer than orphan_min_age ago';

CREATE VIEW filegc.missing AS
SELECT r.path, r.refcount, r.sources
  FROM filegc.references r
 WHERE EXISTS (SELECT FROM filegc.runs WHERE kind = 'scan' AND finished_at IS NOT NULL)
   AND NOT EXISTS (SELECT FROM filegc.inventory i WHERE i.path = r.path);
COMMENT ON VIEW filegc.missing IS 'References whose file was not on the volume at the latest scan (broken references)';

-- Paths the triggers noted as released are pending too, before the sweeper
-- turns the notes into deletions (they have no id yet).
CREATE VIEW filegc.pending AS
SELECT t.id, t.path, t.reason, t.state, t.include_referenced, t.created_at, t.due_at,
       t.claimed_by AS worker, t.lease_until, t.attempts, t.last_error, i.size_bytes
  FROM filegc.tombstones t
  LEFT JOIN filegc.inventory i ON i.path = t.path
 WHERE t.finished_at IS NULL
UNION ALL
SELECT NULL, n.path, 'unreferenced', 'pending', false, n.noted_at,
       n.noted_at + (SELECT filegc.setting('unreferenced_delay')::interval),
       NULL, NULL, 0, NULL, i.size_bytes
  FROM (SELECT r.path, min(r.noted_at) AS noted_at FROM filegc.notes r WHERE r.kind = 'r' GROUP BY r.path) AS n
  LEFT JOIN filegc.inventory i ON i.path = n.path
 WHERE NOT EXISTS (SELECT FROM filegc.tombstones t WHERE t.path = n.path AND t.finished_at IS NULL);
COMMENT ON VIEW filegc.pending IS
    'Deletions scheduled and not finished yet (pending or claimed by a sweeper); those the triggers noted moments ago have no id yet';

CREATE VIEW filegc.deletions AS
SELECT t.id, t.path, t.reason, t.state, t.outcome, t.bytes_freed AS size_bytes, t.finished_at,
       t.claimed_by AS worker, t.attempts, t.last_error, t.restore_requested_at, t.restored_at, t.purged_at
  FROM filegc.tombstones t
 WHERE t.state IN ('done', 'failed');
COMMENT ON VIEW filegc.deletions IS
    'The audit trail: every finished deletion with its reason and outcome (deleted, trashed, already_gone, skipped_referenced) or failure';

CREATE VIEW filegc.sweeps AS
SELECT id, kind, worker, volume_path, started_at, finished_at, files_seen, files_deleted, bytes_freed, errors
  FROM filegc.runs;
COMMENT ON VIEW filegc.sweeps IS 'The history of scans, sweeps, trash purges and scheduled cleanups (orphan_cleanup, retention_cleanup: files_seen counts the files scheduled)';

-- The alert level of a volume that uses used_bytes of total_bytes. The
-- sweeper needs it after every report, without the cost of the statistics.
CREATE FUNCTION filegc.alert_level(used_bytes bigint, total_bytes bigint) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN total_bytes IS NULL OR total_bytes = 0 THEN 'unknown'
                WHEN 100.0 * used_bytes / total_bytes >= filegc.setting('alert_emergency_pct')::numeric THEN 'emergency'
                WHEN 100.0 * used_bytes / total_bytes >= filegc.setting('alert_critical_pct')::numeric THEN 'critical'
                WHEN 100.0 * used_bytes / total_bytes >= filegc.setting('alert_warning_pct')::numeric THEN 'warning'
                ELSE 'ok' END
$$;
COMMENT ON FUNCTION filegc.alert_level(bigint, bigint) IS
    'The alert level (ok, warning, critical, emergency; unknown without a capacity) of a volume using used_bytes of total_bytes';

-- The totals over every path, for filegc.storage_stats. A view cannot set
-- work_mem, and at a million files and references the default 4 MB spilled
-- the hash of the references and their grouping to disk in batches; as a
-- function the query gets its own setting. SECURITY DEFINER, as the view
-- reads the inventory and the application's tables as their owner.
CREATE FUNCTION filegc.file_totals(
    OUT total_files bigint, OUT total_bytes bigint, OUT referenced_files bigint, OUT referenced_bytes bigint,
    OUT orphaned_files bigint, OUT orphaned_bytes bigint, OUT eligible_orphan_files bigint,
    OUT protected_files bigint, OUT unmanaged_files bigint, OUT unmanaged_bytes bigint,
    OUT oldest_modified_at timestamptz, OUT newest_modified_at timestamptz, OUT references_not_on_volume bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET work_mem = '64MB' AS $$
    SELECT count(*) FILTER (WHERE managed) AS total_files,
           coalesce(sum(size_bytes) FILTER (WHERE managed), 0)::bigint AS total_bytes,
           count(*) FILTER (WHERE managed AND referenced) AS referenced_files,
           coalesce(sum(size_bytes) FILTER (WHERE managed AND referenced), 0)::bigint AS referenced_bytes,
           count(*) FILTER (WHERE orphan) AS orphaned_files,
           coalesce(sum(size_bytes) FILTER (WHERE orphan), 0)::bigint AS orphaned_bytes,
           count(*) FILTER (WHERE eligible) AS eligible_orphan_files,
           count(*) FILTER (WHERE managed AND NOT referenced AND NOT orphan) AS protected_files,
           count(*) FILTER (WHERE on_volume AND NOT managed) AS unmanaged_files,
           coalesce(sum(size_bytes) FILTER (WHERE on_volume AND NOT managed), 0)::bigint AS unmanaged_bytes,
           min(modified_at) FILTER (WHERE managed) AS oldest_modified_at,
           max(modified_at) FILTER (WHERE managed) AS newest_modified_at,
           count(*) FILTER (WHERE NOT on_volume) AS references_not_on_volume
      FROM filegc.path_states
$$;
COMMENT ON FUNCTION filegc.file_totals() IS 'The file counts and sizes of filegc.storage_stats; read the view';

CREATE VIEW filegc.storage_stats AS
WITH latest_report AS (
    SELECT * FROM filegc.volume_reports ORDER BY id DESC LIMIT 1
), pending_totals AS (
    SELECT count(*) AS pending_deletions, coalesce(sum(size_bytes), 0)::bigint AS pending_bytes FROM filegc.pending
)
SELECT r.volume_path,
       f.total_files,
       f.total_bytes,
       f.referenced_files,
       f.referenced_bytes,
       f.orphaned_files,
       f.orphaned_bytes,
       f.eligible_orphan_files,
       CASE WHEN EXISTS (SELECT FROM filegc.runs WHERE kind = 'scan' AND finished_at IS NOT NULL)
            THEN f.references_not_on_volume ELSE 0 END AS missing_refs,
       (SELECT count(*) FROM filegc.invalid_refs) AS invalid_refs,
       f.protected_files,
       p.pending_deletions,
       p.pending_bytes,
       coalesce(r.trash_files, 0) AS trash_files,
       coalesce(r.trash_bytes, 0) AS trash_bytes,
       f.unmanaged_files,
       f.unmanaged_bytes,
       f.oldest_modified_at,
       f.newest_modified_at,
       r.total_bytes AS capacity_bytes,
       r.used_bytes,
       round(100.0 * r.used_bytes / nullif(r.total_bytes, 0), 1) AS used_pct,
       filegc.alert_level(r.used_bytes, r.total_bytes) AS alert_level,
       (SELECT max(finished_at) FROM filegc.runs WHERE kind = 'scan') AS last_scan_at,
       (SELECT max(finished_at) FROM filegc.runs WHERE kind = 'sweep') AS last_sweep_at
  FROM filegc.file_totals() f
 CROSS JOIN pending_totals p
  LEFT JOIN latest_report r ON true;
COMMENT ON VIEW filegc.storage_stats IS
    'One row: what is on the volume (managed images; unmanaged files apart), what is referenced, orphaned, missing, pending and in the trash, and how full the volume is';

CREATE FUNCTION filegc.old_files(days integer DEFAULT 30)
RETURNS TABLE (path text, size_bytes bigint, modified_at timestamptz, referenced boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT f.path, f.size_bytes, f.modified_at, f.referenced
      FROM filegc.files f
     WHERE f.managed AND f.modified_at < now() - make_interval(days => days)
     ORDER BY f.modified_at
$$;
COMMENT ON FUNCTION filegc.old_files(integer) IS 'Managed files last modified more than `days` days ago, oldest first';

-- Which of `paths`, files on the volume now, are orphans: the paths the final
-- check (filegc.kept_among) would not keep, so a fresh listing of the
-- volume (`filegc orphans`) applies the very rule deletions go by, without
-- an inventory. Sorted as the listings are. SECURITY DEFINER, as the final
-- check reads the application's tables as their owner; planned for each
-- call's array, as filegc.kept_among is.
CREATE FUNCTION filegc.orphans_among(paths text[]) RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    PERFORM filegc.require_sound_tracking();
    RETURN QUERY
    SELECT DISTINCT p FROM unnest(paths) AS p
      LEFT JOIN filegc.kept_among(paths) AS k ON k.path = p
     WHERE p IS NOT NULL AND k.path IS NULL
     ORDER BY p;
END
$$;
COMMENT ON FUNCTION filegc.orphans_among(text[]) IS
    'Which of the given paths, files on the volume now, are orphans (what the final check would not keep), sorted';
REVOKE EXECUTE ON FUNCTION filegc.orphans_among(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION filegc.orphans_among(text[]) TO filegc_sweeper;

------------------------------------------------------------------------------
-- Cleanup functions for people
------------------------------------------------------------------------------

-- Refuses to guess before the sweeper has reported what is on the volume.
CREATE FUNCTION filegc.require_scan() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM filegc.runs WHERE kind = 'scan' AND finished_at IS NOT NULL) THEN
        RAISE EXCEPTION 'filegc: no scan of the volume has been reported yet, so filegc does not know which files exist'
            USING HINT = 'Run `filegc scan` where the volume is mounted (or start `filegc run`), then try again.';
    END IF;
END
$$;

-- The circuit breaker: one call may schedule at most max_delete_fraction of
-- the managed files in the latest scan, unless forced. Files filegc does
-- not manage are never deleted, so they do not count: a hundred log files
-- must not let a third of the images go. breaker_refusal says why it would
-- refuse, so that a dry run can say so before anyone is asked to confirm;
-- check_breaker refuses, with the SQLSTATE breaker_sqlstate(), by which the
-- sweeper tells a refusal from other errors and speaks its own options.
CREATE FUNCTION filegc.breaker_sqlstate() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'FG001' $$;

CREATE FUNCTION filegc.breaker_refusal(file_count bigint, byte_count bigint, what text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    managed_files bigint;
    fraction numeric;
BEGIN
    IF coalesce(file_count, 0) = 0 THEN
        RETURN NULL;
    END IF;
    fraction := filegc.setting('max_delete_fraction')::numeric;
    -- As filegc.path_states decides it: the scan's flags while they were
    -- computed with today's patterns, else the patterns themselves.
    IF (SELECT m.patterns FROM filegc.inventory_managed_by m) IS NOT DISTINCT FROM filegc.setting('managed_patterns') THEN
        SELECT count(*) INTO managed_files FROM filegc.inventory i
         WHERE coalesce(i.managed, i.path ~* (SELECT filegc.managed_regex()));
    ELSE
        SELECT count(*) INTO managed_files FROM filegc.inventory i WHERE i.path ~* (SELECT filegc.managed_regex());
    END IF;
    IF file_count <= fraction * managed_files THEN
        RETURN NULL;
    END IF;
    RETURN format('filegc: circuit breaker: %s would delete %s of the %s files filegc manages in the latest scan (%s), more than max_delete_fraction (%s)',
                  what, file_count, managed_files, pg_size_pretty(byte_count), fraction);
END
$$;

CREATE FUNCTION filegc.check_breaker(file_count bigint, byte_count bigint, force boolean, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    refusal text;
BEGIN
    IF force THEN
        RETURN;
    END IF;
    refusal := filegc.breaker_refusal(file_count, byte_count, what);
    IF refusal IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = filegc.breaker_sqlstate(), MESSAGE = refusal,
            HINT = 'Check the list first (dry_run => true). If it is right, call again with force => true; '
                   'or raise the limit: UPDATE filegc.settings SET value = ''0.5'' WHERE name = ''max_delete_fraction''.';
    END IF;
END
$$;

-- Writes tombstones due now for `paths` and returns the paths it scheduled
-- (a path with an open tombstone already is left as it is).
CREATE FUNCTION filegc.schedule_now(paths text[], reason text, include_referenced boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scheduled integer;
BEGIN
    RETURN QUERY
    INSERT INTO filegc.tombstones (path, reason, due_at, include_referenced)
    SELECT p, reason, now(), include_referenced FROM unnest(paths) AS p
        ON CONFLICT (path) WHERE finished_at IS NULL DO NOTHING
    RETURNING path;
    GET DIAGNOSTICS scheduled = ROW_COUNT;
    IF scheduled > 0 THEN
        PERFORM pg_notify('filegc', 'scheduled');
    END IF;
END
$$;

-- What both cleanups do once they know their candidates: list them (dry
-- run), or pass the breaker and schedule them, and return the files.
CREATE FUNCTION filegc.run_cleanup(candidate_paths text[], reason text, include_referenced boolean,
                                   dry_run boolean, force boolean, what text)
RETURNS TABLE (path text, size_bytes bigint, modified_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- What the breaker weighs; forced, it weighs nothing.
    candidate_bytes bigint;
    refusal text;
BEGIN
    IF NOT force THEN
        candidate_bytes := (SELECT coalesce(sum(i.size_bytes), 0)::bigint
                              FROM filegc.inventory i JOIN unnest(candidate_paths) AS c(path) ON c.path = i.path);
    END IF;
    IF dry_run AND NOT force THEN
        refusal := filegc.breaker_refusal(cardinality(candidate_paths), candidate_bytes, what);
        IF refusal IS NOT NULL THEN
            RAISE NOTICE '%', refusal
                USING HINT = 'Without dry_run, the call is refused unless force => true.';
        END IF;
    END IF;
    IF NOT dry_run THEN
        PERFORM filegc.check_breaker(cardinality(candidate_paths), candidate_bytes, force, what);
        candidate_paths := ARRAY(SELECT filegc.schedule_now(candidate_paths, reason, include_referenced));
    END IF;
    RETURN QUERY
    SELECT i.path, i.size_bytes, i.modified_at
      FROM filegc.inventory i
      JOIN unnest(candidate_paths) AS c(path) ON c.path = i.path
     ORDER BY i.modified_at, i.path;
END
$$;

-- The cleanups read filegc.files, which hashes every referenced path to
-- join it with the inventory: a million paths spill to disk in batches
-- under the default work_mem of 4 MB, and fit in 64 MB (times the hash
-- memory multiplier) for the length of the call.
CREATE FUNCTION filegc.cleanup_orphans(dry_run boolean DEFAULT true, force boolean DEFAULT false)
RETURNS TABLE (path text, size_bytes bigint, modified_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB' AS $$
BEGIN
    PERFORM filegc.require_sound_tracking();
    PERFORM filegc.require_scan();
    RETURN QUERY
    SELECT * FROM filegc.run_cleanup(
        ARRAY(SELECT f.path FROM filegc.files f WHERE f.eligible ORDER BY f.path),
        'orphan', false, dry_run, force, 'cleaning up the orphans');
END
$$;
COMMENT ON FUNCTION filegc.cleanup_orphans(boolean, boolean) IS
    'Lists (dry_run, the default) or schedules for deletion the eligible orphans; refuses past max_delete_fraction unless force';

CREATE FUNCTION filegc.cleanup_older_than(days integer, include_referenced boolean DEFAULT false,
                                          dry_run boolean DEFAULT true, force boolean DEFAULT false)
RETURNS TABLE (path text, size_bytes bigint, modified_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB' AS $$
BEGIN
    IF days IS NULL OR days < 0 THEN
        RAISE EXCEPTION 'filegc.cleanup_older_than: days must be 0 or more, not %', days;
    END IF;
    PERFORM filegc.require_sound_tracking();
    PERFORM filegc.require_scan();
    RETURN QUERY
    SELECT * FROM filegc.run_cleanup(
        ARRAY(SELECT f.path FROM filegc.files f
               WHERE f.managed
                 AND f.modified_at < now() - make_interval(days => days)
                 AND (include_referenced OR f.orphan)
               ORDER BY f.path),
        'expired', include_referenced, dry_run, force, format('removing images older than %s days', days));
END
$$;
COMMENT ON FUNCTION filegc.cleanup_older_than(integer, boolean, boolean, boolean) IS
    'Lists (dry_run, the default) or schedules for deletion managed files older than `days`; referenced ones only with include_referenced';

-- Deletes exactly the given paths: what a CLI filter asks for, or an
-- operator in psql. The final check's rules apply now already (referenced,
-- protected and unmanaged paths are skipped) and so does the circuit
-- breaker, which only `force` passes.
CREATE FUNCTION filegc.schedule_delete(paths text[], reason text DEFAULT 'manual', force boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    valid text[];
    kept_paths text[];
    kept_reasons text[];
    free text[];
    skipped record;
    scheduled integer;
BEGIN
    IF reason NOT IN ('manual', 'orphan', 'expired', 'unreferenced') THEN
        RAISE EXCEPTION 'filegc.schedule_delete: reason must be manual, orphan, expired or unreferenced, not "%"', reason;
    END IF;
    valid := ARRAY(SELECT DISTINCT p FROM unnest(paths) AS p WHERE filegc.ref_path(p, '{}') IS NOT DISTINCT FROM p AND p IS NOT NULL);
    IF cardinality(valid) < coalesce(cardinality(paths), 0) THEN
        RAISE NOTICE 'filegc.schedule_delete: skipped % paths that are not plain paths relative to the volume root',
            cardinality(paths) - cardinality(valid);
    END IF;
    -- The final check's rule, asked once: it probes every path.
    SELECT coalesce(array_agg(k.path), '{}'), coalesce(array_agg(k.reason), '{}') INTO kept_paths, kept_reasons
      FROM filegc.kept_among(valid) AS k;
    FOR skipped IN SELECT r AS why, count(*) AS files FROM unnest(kept_reasons) AS r GROUP BY r LOOP
        RAISE NOTICE 'filegc.schedule_delete: skipped % % paths', skipped.files, skipped.why;
    END LOOP;
    free := ARRAY(SELECT p FROM unnest(valid) AS p EXCEPT SELECT p FROM unnest(kept_paths) AS p);
    PERFORM filegc.check_breaker(
        cardinality(free),
        (SELECT coalesce(sum(i.size_bytes), 0)::bigint FROM filegc.inventory i WHERE i.path = ANY (free)),
        force, format('deleting %s given paths', cardinality(free)));
    SELECT count(*) INTO scheduled FROM filegc.schedule_now(free, reason);
    RETURN scheduled;
END
$$;
COMMENT ON FUNCTION filegc.schedule_delete(text[], text, boolean) IS
    'Schedules the deletion of the given paths (relative to the volume root), skipping referenced, protected, unmanaged and malformed ones; refuses past max_delete_fraction unless force; returns how many it scheduled';

CREATE FUNCTION filegc.cancel(path text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM filegc.process_notes();
    UPDATE filegc.tombstones t SET state = 'cancelled', finished_at = now()
     WHERE t.path = cancel.path AND t.state = 'pending';
    IF FOUND THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT FROM filegc.tombstones t WHERE t.path = cancel.path AND t.state = 'claimed') THEN
        RAISE NOTICE 'filegc.cancel: % is being swept right now; if it was trashed, filegc.restore() brings it back', path;
    END IF;
    RETURN false;
END
$$;
COMMENT ON FUNCTION filegc.cancel(text) IS 'Cancels the pending deletion of a path; false when none is pending';

CREATE FUNCTION filegc.restore(path text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE filegc.tombstones t SET restore_requested_at = now()
     WHERE t.id = (SELECT max(id) FROM filegc.tombstones l
                    WHERE l.path = restore.path AND l.state = 'done' AND l.outcome = 'trashed'
                      AND l.purged_at IS NULL AND l.restored_at IS NULL)
       AND t.restore_requested_at IS NULL;
    IF FOUND THEN
        PERFORM pg_notify('filegc', 'restore');
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT FROM filegc.tombstones l
                    WHERE l.path = restore.path AND l.state = 'done' AND l.outcome = 'trashed'
                      AND l.purged_at IS NULL AND l.restored_at IS NULL);
END
$$;
COMMENT ON FUNCTION filegc.restore(text) IS
    'Asks the sweeper to move a trashed file back where it was; false when it is not in the trash';

------------------------------------------------------------------------------
-- The sweeper's protocol
------------------------------------------------------------------------------

CREATE FUNCTION filegc.start_run(kind text, worker text, volume_path text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO filegc.runs (kind, worker, volume_path) VALUES (kind, worker, volume_path) RETURNING id
$$;

CREATE FUNCTION filegc.finish_run(run_id bigint, files_seen bigint, files_deleted bigint, bytes_freed bigint, errors bigint)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE filegc.runs
       SET finished_at = now(), files_seen = $2, files_deleted = $3, bytes_freed = $4, errors = $5
     WHERE id = run_id AND finished_at IS NULL
$$;

-- Where a bucket's listing that was interrupted (a crash, a deploy, a
-- failed request) resumes: the latest scan of the place left unfinished
-- within `started_within`, and the last path its listing committed, in the
-- byte order S3 lists keys in (COLLATE "C" compares UTF-8 bytes). Nothing
-- when there is none, or it committed nothing. The caller holds the
-- bucket's listing lock, so no other sweeper is adding to that scan.
CREATE FUNCTION filegc.resume_scan(place text, started_within interval)
RETURNS TABLE (scan_id bigint, last_path text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT latest.id, staged.last_path
      FROM (SELECT r.id FROM filegc.runs r
             WHERE r.kind = 'scan' AND r.finished_at IS NULL AND r.volume_path = place
               AND r.started_at > now() - started_within
             ORDER BY r.started_at DESC, r.id DESC
             LIMIT 1) AS latest
     CROSS JOIN LATERAL (SELECT max(s.path COLLATE "C") AS last_path
                           FROM filegc.inventory_staging s
                          WHERE s.scan_id = latest.id) AS staged
     WHERE staged.last_path IS NOT NULL
$$;

-- The versions of `paths` the latest listing of a bucket saw, for a sweep
-- to delete those versions and no other: an object written again at its
-- key since (an upload whose row has not committed yet) is not the one its
-- deletion was scheduled for, and stays until a listing has seen it.
CREATE FUNCTION filegc.listed_versions(paths text[])
RETURNS TABLE (path text, size_bytes bigint, etag text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.path, i.size_bytes, i.etag FROM filegc.inventory i WHERE i.path = ANY (paths) AND i.etag IS NOT NULL
$$;

-- Merges the files a scan COPYed into filegc.inventory_staging into the
-- inventory, keeping each file's first sighting, and finishes the run.
-- A rescan of a million files changes a handful: one hash join of the scan
-- with the inventory finds them, and only they are written. An upsert of
-- every scanned file locked and rewrote each existing row and took most of
-- a scan's time. The work memory holds that hash of a million paths
-- (about 90 MB) instead of spilling it to disk in batches; the statistics
-- of the staging table tell the planner how large the scan is.
CREATE FUNCTION filegc.finish_scan(scan_id bigint, errors bigint DEFAULT 0)
RETURNS TABLE (files bigint, bytes bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET work_mem = '64MB' AS $$
DECLARE
    scanned_files bigint;
    scanned_bytes bigint;
    patterns text := filegc.setting('managed_patterns');
    managed_regex text := filegc.managed_regex();
    staging_is_ours boolean;
BEGIN
    IF NOT EXISTS (SELECT FROM filegc.runs r WHERE r.id = scan_id AND r.kind = 'scan' AND r.finished_at IS NULL) THEN
        RAISE EXCEPTION 'filegc.finish_scan: no scan % in progress', scan_id;
    END IF;
    -- Two scans finishing at once would each delete the other's new files.
    PERFORM pg_advisory_xact_lock(filegc.escalation_lock_class(), 1);
    -- Flags computed with other patterns, or by no one, are computed again.
    IF patterns IS DISTINCT FROM (SELECT m.patterns FROM filegc.inventory_managed_by m) THEN
        UPDATE filegc.inventory i SET managed = i.path ~* managed_regex
         WHERE i.managed IS DISTINCT FROM (i.path ~* managed_regex);
        DELETE FROM filegc.inventory_managed_by;
        INSERT INTO filegc.inventory_managed_by (patterns) VALUES (patterns);
    END IF;
    ANALYZE filegc.inventory_staging;
    INSERT INTO filegc.scan_changes (path, vanished, appeared, size_bytes, modified_at, etag)
    SELECT coalesce(s.path, i.path), s.path IS NULL, i.path IS NULL, s.size_bytes, s.modified_at, s.etag
      FROM (SELECT * FROM filegc.inventory_staging st WHERE st.scan_id = finish_scan.scan_id) AS s
      FULL JOIN filegc.inventory i ON i.path = s.path
     WHERE s.path IS NULL OR i.path IS NULL
        OR (i.size_bytes, i.modified_at, i.etag) IS DISTINCT FROM (s.size_bytes, s.modified_at, s.etag);
    ANALYZE filegc.scan_changes;
    DELETE FROM filegc.inventory i
     USING filegc.scan_changes c
     WHERE c.vanished AND i.path = c.path;
    UPDATE filegc.inventory i
       SET size_bytes = c.size_bytes, modified_at = c.modified_at, etag = c.etag, scan_id = finish_scan.scan_id
      FROM filegc.scan_changes c
     WHERE NOT c.vanished AND NOT c.appeared AND i.path = c.path;
    INSERT INTO filegc.inventory (path, size_bytes, modified_at, first_seen_at, scan_id, managed, etag)
    SELECT c.path, c.size_bytes, c.modified_at, now(), finish_scan.scan_id, c.path ~* managed_regex, c.etag
      FROM filegc.scan_changes c
     WHERE c.appeared;
    -- Empty whenever a call commits: a failed call's rows roll back with it.
    TRUNCATE filegc.scan_changes;
    -- Deleting a million staged rows writes every one of them; emptying the
    -- table is instant, but only right when it holds this scan alone. A scan
    -- in the middle of its COPY holds a lock on it, so the lock is only
    -- tried; one that has committed rows shows them, so they are looked for.
    BEGIN
        LOCK TABLE filegc.inventory_staging IN ACCESS EXCLUSIVE MODE NOWAIT;
        staging_is_ours := NOT EXISTS (SELECT FROM filegc.inventory_staging s WHERE s.scan_id <> finish_scan.scan_id);
    EXCEPTION WHEN lock_not_available THEN
        staging_is_ours := false;
    END;
    IF staging_is_ours THEN
        TRUNCATE filegc.inventory_staging;
    ELSE
        DELETE FROM filegc.inventory_staging s WHERE s.scan_id = finish_scan.scan_id;
    END IF;
    SELECT count(*), coalesce(sum(size_bytes), 0)::bigint INTO scanned_files, scanned_bytes FROM filegc.inventory;
    PERFORM filegc.finish_run(scan_id, scanned_files, 0, 0, errors);
    RETURN QUERY SELECT scanned_files, scanned_bytes;
END
$$;

CREATE FUNCTION filegc.report_volume(worker text, volume_path text, total_bytes bigint, used_bytes bigint,
                                     free_bytes bigint, trash_files bigint, trash_bytes bigint)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO filegc.volume_reports (worker, volume_path, total_bytes, used_bytes, free_bytes, trash_files, trash_bytes)
    VALUES (worker, volume_path, total_bytes, used_bytes, free_bytes, trash_files, trash_bytes);
    RETURN filegc.alert_level(used_bytes, total_bytes);
END
$$;
COMMENT ON FUNCTION filegc.report_volume(text, text, bigint, bigint, bigint, bigint, bigint) IS
    'The sweeper reports the volume''s capacity and trash; returns the alert level';

-- Claims up to `batch_size` due tombstones for `worker` for one lease,
-- after turning the triggers' notes into tombstones. A claim whose lease ran
-- out after max_attempts tries becomes failed when the claims reach it again
-- (finding such claims anywhere else would need an index on the lease,
-- which would make every claim write index entries).
CREATE FUNCTION filegc.claim(worker text, batch_size integer)
RETURNS TABLE (id bigint, path text, reason text, include_referenced boolean, attempts integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- Read once: a setting read in the row's expressions is a function call per row.
    lease_length interval := filegc.setting('lease')::interval;
    max_attempts integer := filegc.setting('max_attempts')::integer;
    due bigint[];
    given_up integer;
BEGIN
    PERFORM filegc.process_notes();
    -- Claiming what the final check would refuse anyway would spend the
    -- deletions' attempts: while filegc cannot see every row, nothing is
    -- claimed.
    PERFORM filegc.require_sound_tracking();
    LOOP
        -- An array of ids: joined with this query instead, the generic plan
        -- hashed every tombstone at every claim.
        due := ARRAY(SELECT d.id FROM filegc.tombstones d
                      WHERE d.finished_at IS NULL AND d.due_at <= now()
                        AND (d.state = 'pending' OR d.lease_until < now())
                      ORDER BY d.due_at
                      LIMIT batch_size
                        FOR UPDATE SKIP LOCKED);
        IF cardinality(due) = 0 THEN
            RETURN;
        END IF;
        UPDATE filegc.tombstones t
           SET state = 'failed', finished_at = now(),
               last_error = coalesce(t.last_error, 'the sweeper that claimed it stopped before finishing')
                            || format(' (gave up after %s attempts)', t.attempts)
         WHERE t.id = ANY (due) AND t.state = 'claimed' AND t.attempts >= max_attempts;
        GET DIAGNOSTICS given_up = ROW_COUNT;
        RETURN QUERY
        UPDATE filegc.tombstones t
           SET state = 'claimed', claimed_by = worker,
               lease_until = now() + lease_length, attempts = t.attempts + 1
         WHERE t.id = ANY (due) AND t.finished_at IS NULL
        RETURNING t.id, t.path, t.reason, t.include_referenced, t.attempts;
        -- A batch that was all given up claims nothing: look again, or the
        -- sweeper would take the empty batch for an empty queue.
        EXIT WHEN given_up < cardinality(due);
    END LOOP;
END
$$;
COMMENT ON FUNCTION filegc.claim(text, integer) IS
    'Sweeper protocol: claims due deletions for one lease (FOR UPDATE SKIP LOCKED)';

-- The final check, in the transaction in which the sweeper deletes (see the
-- lock protocol in references.sql). For each claimed tombstone it returns
-- `delete`, or settles it at once: `referenced`, `protected` and
-- `unmanaged` (done: skipped_referenced, skipped_protected,
-- skipped_unmanaged; see filegc.kept_among), `busy` (back to pending: a
-- writer holds the path), `lost` (the lease went to another sweeper). An
-- expired deletion with include_referenced skips the references and the
-- protection by name, and nothing else. Nothing is deleted while filegc
-- cannot see every row and every write of the tracked tables
-- (filegc.tracking_problems): the check raises an error instead. The
-- tombstone rows stay locked until the sweeper's transaction ends, so no
-- other sweeper can reclaim them meanwhile.
-- A deletion claimed again may find its file in the trash, moved there by an
-- attempt whose batch was lost; the trash holds one copy per path, so
-- trash_copy_recorded says when that copy is another deletion's instead
-- (recorded trashed, neither restored nor purged).
CREATE FUNCTION filegc.check_before_delete(worker text, ids bigint[])
RETURNS TABLE (id bigint, path text, verdict text, attempts integer, trash_copy_recorded boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mine bigint[];
    escalation_free boolean;
    batch_ids bigint[];
    batch_paths text[];
    batch_attempts integer[];
    verdicts text[];
    kept_paths text[];
    kept_reasons text[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'filegc.check_before_delete needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING HINT = 'Its check must see rows committed after the transaction began.';
    END IF;
    PERFORM filegc.require_sound_tracking();
    SELECT coalesce(array_agg(t.id), '{}') INTO mine
      FROM (SELECT x.id FROM filegc.tombstones x
             WHERE x.id = ANY (ids) AND x.state = 'claimed' AND x.claimed_by = worker
             ORDER BY x.id FOR UPDATE) AS t;
    escalation_free := pg_try_advisory_xact_lock(filegc.escalation_lock_class(), 0);

    SELECT array_agg(t.id ORDER BY t.id), array_agg(t.path ORDER BY t.id), array_agg(t.attempts ORDER BY t.id),
           array_agg(CASE WHEN NOT (t.id IN (SELECT m FROM unnest(mine) AS m)) THEN 'lost'
                          WHEN NOT escalation_free THEN 'busy'
                          WHEN NOT filegc.lock_for_deletion(t.path) THEN 'busy'
                          WHEN t.reason = 'expired' AND t.include_referenced THEN 'unchecked'
                          ELSE 'check' END ORDER BY t.id)
      INTO batch_ids, batch_paths, batch_attempts, verdicts
      FROM filegc.tombstones t
     WHERE t.id = ANY (ids);

    -- A new statement, so a new snapshot, taken after the locks above.
    SELECT coalesce(array_agg(k.path), '{}'), coalesce(array_agg(k.reason), '{}') INTO kept_paths, kept_reasons
      FROM filegc.kept_among(ARRAY(SELECT u.p FROM unnest(batch_paths, verdicts) AS u(p, v)
                                    WHERE u.v IN ('check', 'unchecked'))) AS k;

    RETURN QUERY
    WITH kept AS (
        SELECT k.p, k.r FROM unnest(kept_paths, kept_reasons) AS k(p, r)
    ), settled AS (
        SELECT u.i, u.p, u.a,
               CASE WHEN u.v NOT IN ('check', 'unchecked') THEN u.v
                    ELSE coalesce((SELECT k.r FROM kept k WHERE k.p = u.p AND (u.v = 'check' OR k.r = 'unmanaged')),
                                  'delete') END AS v
          FROM unnest(batch_ids, batch_paths, batch_attempts, verdicts) AS u(i, p, a, v)
    ), skipped AS (
        UPDATE filegc.tombstones t
           SET state = 'done', outcome = 'skipped_' || s.v, bytes_freed = 0, finished_at = now()
          FROM settled s
         WHERE s.i = t.id AND s.v IN ('referenced', 'protected', 'unmanaged')
    ), released AS (
        UPDATE filegc.tombstones t
           SET state = 'pending', claimed_by = NULL, lease_until = NULL, attempts = t.attempts - 1
          FROM settled s
         WHERE s.i = t.id AND s.v = 'busy'
    ), wanted_back AS (
        -- A path that must be kept whose file an earlier deletion trashed:
        -- the notes ask for it back, but not when that deletion was still in
        -- flight at the time; asking here covers that case too.
        UPDATE filegc.tombstones t
           SET restore_requested_at = now()
          FROM settled s
         WHERE s.v IN ('referenced', 'protected') AND t.path = s.p AND t.id <> s.i
           AND t.state = 'done' AND t.outcome = 'trashed'
           AND t.restored_at IS NULL AND t.purged_at IS NULL AND t.restore_requested_at IS NULL
    )
    SELECT s.i, s.p, s.v, s.a,
           CASE WHEN s.v = 'delete' AND s.a > 1 THEN EXISTS (
               SELECT FROM filegc.tombstones o
                WHERE o.path = s.p AND o.id <> s.i AND o.state = 'done' AND o.outcome = 'trashed'
                  AND o.restored_at IS NULL AND o.purged_at IS NULL)
           ELSE false END
      FROM settled s ORDER BY s.i;
END
$$;
COMMENT ON FUNCTION filegc.check_before_delete(text, bigint[]) IS
    'Sweeper protocol: under the locks and with a fresh snapshot, says which claimed deletions may go ahead (how many times each was claimed, and whether another deletion recorded the trashed copy of its path)';

-- Records what the sweeper did, one call per batch. With a generic plan,
-- which takes the batch for ten rows, each row is found by the primary key;
-- a plan for a batch's real size hashed every tombstone (as fail does).
CREATE FUNCTION filegc.complete(worker text, ids bigint[], outcomes text[], bytes bigint[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    completed integer;
BEGIN
    WITH finished AS (
        UPDATE filegc.tombstones t
           SET state = 'done', outcome = u.outcome, bytes_freed = u.bytes, finished_at = now(), last_error = NULL
          FROM unnest(ids, outcomes, bytes) AS u(id, outcome, bytes)
         WHERE t.id = u.id AND t.state = 'claimed' AND t.claimed_by = worker
        RETURNING t.path
    ), forgotten AS (
        -- The files are no longer on the volume: the views stay true until
        -- the next scan. A scan merging at this moment holds some of these
        -- rows; waiting for it could deadlock, and it refreshes them anyway.
        DELETE FROM filegc.inventory i
         WHERE i.path IN (SELECT x.path FROM filegc.inventory x JOIN finished f ON f.path = x.path
                           FOR UPDATE OF x SKIP LOCKED)
    )
    SELECT count(*) INTO completed FROM finished;
    RETURN completed;
END
$$;
COMMENT ON FUNCTION filegc.complete(text, bigint[], text[], bigint[]) IS
    'Sweeper protocol: records the outcome (deleted, trashed, already_gone) and bytes freed of a batch';

-- Records failures, one call per batch: retried after a pause that grows
-- with each attempt, or failed for good after max_attempts.
CREATE FUNCTION filegc.fail(worker text, ids bigint[], errors text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    max_attempts integer := filegc.setting('max_attempts')::integer;
    failed integer;
BEGIN
    UPDATE filegc.tombstones t
       SET last_error = u.error,
           state = CASE WHEN t.attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
           finished_at = CASE WHEN t.attempts >= max_attempts THEN now() END,
           due_at = CASE WHEN t.attempts >= max_attempts THEN t.due_at
                         ELSE now() + make_interval(mins => t.attempts) END,
           claimed_by = CASE WHEN t.attempts >= max_attempts THEN t.claimed_by END,
           lease_until = NULL
      FROM unnest(ids, errors) AS u(id, error)
     WHERE t.id = u.id AND t.state = 'claimed' AND t.claimed_by = worker;
    GET DIAGNOSTICS failed = ROW_COUNT;
    RETURN failed;
END
$$;
COMMENT ON FUNCTION filegc.fail(text, bigint[], text[]) IS
    'Sweeper protocol: records failed deletions of a batch; each is retried until max_attempts';

-- Trashed files that someone asked back (filegc.restore, or a row that
-- references the path again).
CREATE FUNCTION filegc.restore_requests()
RETURNS TABLE (id bigint, path text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.id, t.path FROM filegc.tombstones t
     WHERE t.restore_requested_at IS NOT NULL AND t.restored_at IS NULL AND t.purged_at IS NULL
     ORDER BY t.id
$$;

-- Trashed files older than trash_retention that nobody asked back.
CREATE FUNCTION filegc.purge_due(retention interval DEFAULT NULL)
RETURNS TABLE (id bigint, path text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- Read once: in the query, the setting was read again for every finished deletion.
    kept_for interval := coalesce(retention, filegc.setting('trash_retention')::interval);
BEGIN
    RETURN QUERY
    SELECT t.id, t.path FROM filegc.tombstones t
     WHERE t.state = 'done' AND t.outcome = 'trashed' AND t.purged_at IS NULL AND t.restored_at IS NULL
       AND t.restore_requested_at IS NULL
       AND t.finished_at < now() - kept_for
     ORDER BY t.id;
END
$$;

-- Sweeper protocol for the trash: which trashed copies may be unlinked for
-- good. Between listing a copy and unlinking it, a row may reference its path
-- again and ask it back; so, as check_before_delete does for the files, this
-- takes the locks of each path (the sweeper holds them until it has
-- unlinked the copies and recorded them with trash_done in the same
-- transaction) and then, in a new snapshot, keeps every copy that is asked
-- back, whose path a row references or whose name an invalid reference may
-- mean (filegc.kept_among). It never waits: a row another transaction is
-- changing, a path a writer holds, or a path with a deletion still open
-- (whose sweeper may have put its own copy in the trash, over this one) is
-- 'busy' and waits for the next pass. A copy that must be kept is asked
-- back here, for the restore pass.
CREATE FUNCTION filegc.check_before_purge(ids bigint[])
RETURNS TABLE (id bigint, path text, verdict text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    locked_ids bigint[];
    locked_paths text[];
    kept_paths text[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'filegc.check_before_purge needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING HINT = 'Its check must see rows committed after the transaction began.';
    END IF;
    PERFORM filegc.require_sound_tracking();
    IF pg_try_advisory_xact_lock(filegc.escalation_lock_class(), 0) THEN
        SELECT coalesce(array_agg(t.id ORDER BY t.id), '{}'), coalesce(array_agg(t.path ORDER BY t.id), '{}')
          INTO locked_ids, locked_paths
          FROM (SELECT x.id, x.path FROM filegc.tombstones x
                 WHERE x.id = ANY (ids) AND x.state = 'done' AND x.outcome = 'trashed'
                   AND x.purged_at IS NULL AND x.restored_at IS NULL AND x.restore_requested_at IS NULL
                   AND NOT EXISTS (SELECT FROM filegc.tombstones o
                                    WHERE o.path = x.path AND o.finished_at IS NULL)
                 ORDER BY x.id FOR UPDATE SKIP LOCKED) AS t
         WHERE filegc.lock_for_deletion(t.path);
    ELSE
        locked_ids := '{}';
        locked_paths := '{}';
    END IF;

    -- A new statement, so a new snapshot, taken after the locks above. A
    -- copy is off the volume already: whether filegc manages its name now
    -- does not keep it.
    kept_paths := ARRAY(SELECT k.path FROM filegc.kept_among(locked_paths) AS k WHERE k.reason <> 'unmanaged');
    UPDATE filegc.tombstones x SET restore_requested_at = now()
     WHERE x.id = ANY (locked_ids) AND x.path = ANY (kept_paths);
    IF FOUND THEN
        PERFORM pg_notify('filegc', 'restore');
    END IF;

    RETURN QUERY
    SELECT x.id, x.path,
           CASE WHEN NOT (x.id IN (SELECT l FROM unnest(locked_ids) AS l)) THEN 'busy'
                WHEN x.path IN (SELECT k FROM unnest(kept_paths) AS k) THEN 'referenced'
                ELSE 'purge' END
      FROM filegc.tombstones x
     WHERE x.id = ANY (ids)
     ORDER BY x.id;
END
$$;
COMMENT ON FUNCTION filegc.check_before_purge(bigint[]) IS
    'Sweeper protocol: under the locks and with a fresh snapshot, says which trashed copies may be unlinked for good (purge), and asks back those that must be kept';

-- Internal, for the checks before a copy moves back out of the trash: takes,
-- without waiting, the locks a deletion of each path takes
-- (filegc.lock_for_deletion, after the escalation key); returns the paths it
-- locked, none while a writer holds the escalation key. A sweep holds these
-- locks from its final check to its COMMIT, and may have just put a newer
-- copy of the path in the trash: a copy moved out on the word of a list read
-- before (a restore request, a scan's walk of the trash) would be that
-- deletion's, undone behind its back.
CREATE FUNCTION filegc.lock_for_trash_move(paths text[]) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'moving copies out of the trash needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING HINT = 'Its check must see rows committed after the transaction began.';
    END IF;
    IF NOT pg_try_advisory_xact_lock(filegc.escalation_lock_class(), 0) THEN
        RETURN '{}';
    END IF;
    RETURN ARRAY(SELECT p FROM unnest(paths) AS p WHERE filegc.lock_for_deletion(p));
END
$$;
COMMENT ON FUNCTION filegc.lock_for_trash_move(text[]) IS
    'Internal: tries the locks under which copies of the paths may move out of the trash; returns the paths it locked';

-- Sweeper protocol for the trash: which requested restores may be carried
-- out now. Takes the locks of each path (filegc.lock_for_trash_move; the
-- sweeper holds them until it has moved the copies back and recorded them
-- with trash_done in the same transaction), then, in a new snapshot, says
-- 'restore' for a request still open, 'busy' for a path a sweep or a writer
-- holds (the request waits for the next pass), 'settled' for one restored or
-- purged meanwhile.
CREATE FUNCTION filegc.check_before_restore(ids bigint[])
RETURNS TABLE (id bigint, path text, verdict text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    locked text[];
BEGIN
    locked := filegc.lock_for_trash_move(ARRAY(SELECT DISTINCT t.path FROM filegc.tombstones t WHERE t.id = ANY (ids)));
    -- A new statement, so a new snapshot, taken after the locks above.
    RETURN QUERY
    SELECT t.id, t.path,
           CASE WHEN t.restore_requested_at IS NULL OR t.restored_at IS NOT NULL OR t.purged_at IS NOT NULL THEN 'settled'
                WHEN NOT (t.path IN (SELECT l FROM unnest(locked) AS l)) THEN 'busy'
                ELSE 'restore' END
      FROM filegc.tombstones t
     WHERE t.id = ANY (ids)
     ORDER BY t.id;
END
$$;
COMMENT ON FUNCTION filegc.check_before_restore(bigint[]) IS
    'Sweeper protocol: under the locks and with a fresh snapshot, says which requested restores may be carried out (restore)';

-- Sweeper protocol for the trash: which copies that no deletion recorded
-- (filegc.request_restores names them) may move back now. Takes the locks
-- of each path as check_before_restore does, then, in a new snapshot, says
-- 'bring_back' for a copy a row still wants that no finished deletion has
-- recorded since, 'busy' for a path a sweep or a writer holds, and 'settled'
-- for the rest (a deletion recorded it meanwhile, so its own restore
-- request brings it back, or nothing wants it any more).
CREATE FUNCTION filegc.check_before_bringing_back(paths text[])
RETURNS TABLE (path text, verdict text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    locked text[];
    wanted text[];
BEGIN
    locked := filegc.lock_for_trash_move(paths);
    -- A new statement, so a new snapshot, taken after the locks above.
    wanted := ARRAY(SELECT k.path FROM filegc.kept_among(locked) AS k
                     WHERE k.reason IN ('referenced', 'protected')
                       AND NOT EXISTS (SELECT FROM filegc.tombstones t
                                        WHERE t.path = k.path AND t.state = 'done' AND t.outcome = 'trashed'
                                          AND t.restored_at IS NULL AND t.purged_at IS NULL));
    RETURN QUERY
    SELECT p,
           CASE WHEN NOT (p IN (SELECT l FROM unnest(locked) AS l)) THEN 'busy'
                WHEN p IN (SELECT w FROM unnest(wanted) AS w) THEN 'bring_back'
                ELSE 'settled' END
      FROM unnest(paths) AS p;
END
$$;
COMMENT ON FUNCTION filegc.check_before_bringing_back(text[]) IS
    'Sweeper protocol: under the locks and with a fresh snapshot, says which trashed copies no deletion recorded may move back (bring_back)';

-- Records restores and purges the sweeper carried out, one call per batch.
CREATE FUNCTION filegc.trash_done(restored_ids bigint[], purged_ids bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE filegc.tombstones SET restored_at = now() WHERE id = ANY (restored_ids) AND restored_at IS NULL;
    UPDATE filegc.tombstones SET purged_at = now() WHERE id = ANY (purged_ids) AND purged_at IS NULL;
$$;

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------

-- The functions that schedule, delete or report: not for PUBLIC, all for the
-- sweeper's role (schedule_now is only called by the others).
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'filegc.cleanup_orphans(boolean, boolean)',
        'filegc.cleanup_older_than(integer, boolean, boolean, boolean)',
        'filegc.schedule_delete(text[], text, boolean)',
        'filegc.cancel(text)',
        'filegc.restore(text)',
        'filegc.start_run(text, text, text)',
        'filegc.finish_run(bigint, bigint, bigint, bigint, bigint)',
        'filegc.finish_scan(bigint, bigint)',
        'filegc.resume_scan(text, interval)',
        'filegc.listed_versions(text[])',
        'filegc.report_volume(text, text, bigint, bigint, bigint, bigint, bigint)',
        'filegc.claim(text, integer)',
        'filegc.check_before_delete(text, bigint[])',
        'filegc.complete(text, bigint[], text[], bigint[])',
        'filegc.fail(text, bigint[], text[])',
        'filegc.restore_requests()',
        'filegc.purge_due(interval)',
        'filegc.check_before_purge(bigint[])',
        'filegc.check_before_restore(bigint[])',
        'filegc.check_before_bringing_back(text[])',
        'filegc.trash_done(bigint[], bigint[])',
        'filegc.process_notes()',
        'filegc.request_restores(text[])',
        'filegc.tracking_problems()',
        'filegc.require_sound_tracking()']::regprocedure[]
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO filegc_sweeper', fn);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION filegc.schedule_now(text[], text, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    filegc.note_entered(regclass, text[], text[], text[], text[]),
    filegc.note_released(text[]),
    filegc.hold_every_path(regclass, name),
    filegc.wake_sweeper(boolean),
    filegc.lock_for_deletion(text),
    filegc.lock_for_trash_move(text[]),
    filegc.kept_among(text[])
FROM PUBLIC;
GRANT SELECT ON filegc.invalid_refs TO filegc_sweeper;
REVOKE EXECUTE ON FUNCTION filegc.run_cleanup(text[], text, boolean, boolean, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION filegc.reference_rows(), filegc.file_totals() TO filegc_sweeper;

GRANT SELECT ON filegc.settings, filegc.files, filegc.orphans, filegc.missing, filegc.pending, filegc.deletions,
                filegc.sweeps, filegc.storage_stats, filegc.references, filegc.tracked_columns
TO filegc_sweeper;
GRANT EXECUTE ON FUNCTION filegc.old_files(integer) TO filegc_sweeper;
-- The one table the sweeper writes directly: COPY needs INSERT.
GRANT INSERT ON filegc.inventory_staging TO filegc_sweeper;

------------------------------------------------------------------------------
-- Which engine is installed
------------------------------------------------------------------------------

-- The extension and the portable install (sql/portable/) provide the same
-- schema; this says which one is here. The portable install records its
-- version in filegc.portable_install.
CREATE FUNCTION filegc.version(OUT engine text, OUT version text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT 'extension', e.extversion INTO engine, version FROM pg_extension e WHERE e.extname = 'filegc';
    IF NOT FOUND THEN
        engine := 'portable';
        EXECUTE 'SELECT version FROM filegc.portable_install' INTO version;
    END IF;
END
$$;
COMMENT ON FUNCTION filegc.version() IS 'Which filegc engine is installed (extension or portable) and its version';

------------------------------------------------------------------------------
-- Dumps
------------------------------------------------------------------------------

-- Registers a table whose rows are the operator's data with pg_dump. Outside
-- CREATE/ALTER EXTENSION (a portable install) there is nothing to register.
CREATE FUNCTION filegc.keep_in_dumps(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_extension_config_dump(tbl, '');
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;

-- The notes are the operator's data too: an invalid value noted moments
-- before a dump protects the file it names after the restore.
SELECT filegc.keep_in_dumps(t) FROM unnest(ARRAY[
    'filegc.runs', 'filegc.runs_id_seq', 'filegc.inventory',
    'filegc.volume_reports', 'filegc.volume_reports_id_seq', 'filegc.notes']::regclass[]) AS t;

------------------------------------------------------------------------------
-- Schema changes the event triggers follow
------------------------------------------------------------------------------

-- Needs a superuser (a portable install without one has none, and the final
-- check then names what filegc.sync_tracking() would fix).
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER filegc_sync_tracking ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'DROP TRIGGER')
            EXECUTE FUNCTION filegc.sync_tracking_after_ddl();
    ELSE
        RAISE NOTICE 'filegc: not a superuser, so no event trigger follows schema changes: after renaming a tracked column, detaching a partition of a tracked table or creating an inheritance child of one, run SELECT filegc.sync_tracking()';
    END IF;
END
$$;

------------------------------------------------------------------------------
-- What an upgrade from 0.1.0 changes in the tables filegc tracks
------------------------------------------------------------------------------

-- Every tracked table gets this version's triggers, and every tracked index
-- this version's path rules (a query or fragment names nothing, and a path
-- too long to index is an invalid reference). A new install has no tracked
-- table, so this does nothing there.
DO $$
DECLARE
    tracked_index record;
BEGIN
    FOR tracked_index IN
        SELECT t.table_name, n.nspname, t.index_name
          FROM filegc.tracked t
          JOIN pg_class c ON c.oid = t.table_name
          JOIN pg_namespace n ON n.oid = c.relnamespace
    LOOP
        PERFORM filegc.install_triggers(tracked_index.table_name);
        EXECUTE format('REINDEX INDEX %I.%I', tracked_index.nspname, tracked_index.index_name);
    END LOOP;
END
$$;
SELECT filegc.sync_tracking();

------------------------------------------------------------------------------
-- Every object has a comment; internal ones say so
------------------------------------------------------------------------------

COMMENT ON FUNCTION filegc.file_name(text) IS
    'Internal: the last segment of a path (its file name)';
COMMENT ON FUNCTION filegc.ref_path(text, text[]) IS
    'The path a stored value references, relative to the volume root; NULL when it references nothing or cannot be a reference';
COMMENT ON FUNCTION filegc.ref_paths(text[], text[]) IS
    'The paths an array of stored values references (NULLs and invalid values left out, duplicates kept once)';
COMMENT ON FUNCTION filegc.ref_path_problem(text, text[]) IS
    'Why a stored value cannot be a reference; NULL when it is one or is empty';
COMMENT ON FUNCTION filegc.managed_regex() IS
    'Internal: the managed_patterns setting as one case-insensitive regular expression over relative paths';
COMMENT ON FUNCTION filegc.settings_write() IS
    'Internal: makes the view filegc.settings writable (UPDATE changes a setting, DELETE resets it)';
COMMENT ON FUNCTION filegc.path_lock_class() IS
    'Internal: the advisory-lock class of path locks (points 1 and 2 of the lock protocol in references.sql)';
COMMENT ON FUNCTION filegc.escalation_lock_class() IS
    'Internal: the advisory-lock class of the escalation lock a transaction takes past max_path_locks() path locks';
COMMENT ON FUNCTION filegc.max_path_locks() IS
    'Internal: how many path locks one transaction takes before it escalates';
COMMENT ON FUNCTION filegc.path_lock_key(text) IS
    'Internal: the advisory-lock key of a path, in the class filegc.path_lock_class()';
COMMENT ON FUNCTION filegc.reserve_path_locks(integer) IS
    'Internal, for the triggers: counts this transaction''s path locks; false, with the escalation lock taken, past max_path_locks()';
COMMENT ON FUNCTION filegc.reference_expression(name, boolean, text[]) IS
    'Internal: the expression that maps a tracked column to its references, as the index, the probes and the listings use it';
COMMENT ON FUNCTION filegc.reference_rows_query(regclass, filegc.tracked[]) IS
    'Internal: the query that lists (path, source) for the given tracked columns of one table';
COMMENT ON FUNCTION filegc.paths_in(regclass, filegc.tracked[]) IS
    'Internal: the distinct paths the given tracked columns of one table reference';
COMMENT ON FUNCTION filegc.unreferenced_probe(regclass) IS
    'Internal: the query that finds which candidate paths no tracked column references (one index probe per path and column)';
COMMENT ON FUNCTION filegc.unreferenced_among(text[], regclass) IS
    'Internal: the paths among the given ones that no tracked column references';
COMMENT ON FUNCTION filegc.reference_rows() IS
    'Internal: every (path, source) of every tracked column, computed from the rows; read filegc.references';
COMMENT ON FUNCTION filegc.release_wake_pause() IS
    'Internal: how long a session that woke the sweeper for released paths waits before it wakes it again';
COMMENT ON FUNCTION filegc.wake_sweeper(boolean) IS
    'Internal: wakes a listening sweeper (NOTIFY filegc); for released paths at most once per release_wake_pause() per session';
COMMENT ON FUNCTION filegc.release_table(regclass) IS
    'Internal, for the TRUNCATE trigger: notes every path of a table''s rows as released';
COMMENT ON FUNCTION filegc.record_invalid_refs(regclass, name[], text[], text[]) IS
    'Internal: records the invalid values filegc.track() finds in a column it starts tracking';
COMMENT ON FUNCTION filegc.references_trigger() IS
    'Internal: the row trigger filegc.track() installs on tracked tables; it locks and notes the paths that enter and leave rows';
COMMENT ON FUNCTION filegc.truncate_trigger() IS
    'Internal: the TRUNCATE trigger filegc.track() installs on tracked tables; it notes the paths of the rows as released';
COMMENT ON FUNCTION filegc.find_reference_index(regclass, name, boolean, text[]) IS
    'Internal: an existing valid index on exactly the reference expression of a column, if there is one';
COMMENT ON FUNCTION filegc.install_triggers(regclass) IS
    'Internal: (re)creates the triggers of a table from its tracked columns';
COMMENT ON FUNCTION filegc.forget_dropped() IS
    'Internal: the event trigger filegc_forget_dropped, which forgets dropped tables and columns';
COMMENT ON FUNCTION filegc.untrack(regclass, name, boolean) IS
    'Stops tracking a column (and the same column of the table''s inheritance children): removes its triggers and the index filegc created, and notes every path the column held as released, so that the sweeper schedules those no other row references; returns how many it noted, and refuses past max_delete_fraction of the column''s paths unless force';
COMMENT ON FUNCTION filegc.schedule_now(text[], text, boolean) IS
    'Internal: writes deletions due now for the given paths; returns the paths it scheduled';
COMMENT ON FUNCTION filegc.restore_requests() IS
    'Sweeper protocol: the trashed files someone asked back';
COMMENT ON FUNCTION filegc.purge_due(interval) IS
    'Sweeper protocol: trashed files older than trash_retention that nobody asked back';
COMMENT ON FUNCTION filegc.trash_done(bigint[], bigint[]) IS
    'Sweeper protocol: records the restores and purges of a batch';
COMMENT ON FUNCTION filegc.start_run(text, text, text) IS
    'Sweeper protocol: records the start of a scan, sweep, purge or scheduled cleanup; returns its id';
COMMENT ON FUNCTION filegc.finish_run(bigint, bigint, bigint, bigint, bigint) IS
    'Sweeper protocol: records the end of a run and what it did';
COMMENT ON FUNCTION filegc.finish_scan(bigint, bigint) IS
    'Sweeper protocol: merges the files a scan copied into filegc.inventory_staging into the inventory and finishes the run';
COMMENT ON FUNCTION filegc.resume_scan(text, interval) IS
    'Sweeper protocol: the unfinished scan of a bucket a listing resumes, and the last path it committed';
COMMENT ON FUNCTION filegc.listed_versions(text[]) IS
    'Sweeper protocol: the size and ETag the latest listing of a bucket gave each of these paths';
COMMENT ON FUNCTION filegc.require_scan() IS
    'Internal: raises an error until the sweeper has reported a scan of the volume';
COMMENT ON FUNCTION filegc.breaker_sqlstate() IS
    'The SQLSTATE of a refusal by the circuit breaker (FG001)';
COMMENT ON FUNCTION filegc.breaker_refusal(bigint, bigint, text) IS
    'Why the circuit breaker would refuse to schedule file_count files (byte_count bytes) without force; NULL when it would not';
COMMENT ON FUNCTION filegc.check_breaker(bigint, bigint, boolean, text) IS
    'Internal: the circuit breaker; raises an error when a call would schedule more than max_delete_fraction of the managed files, unless forced';
COMMENT ON FUNCTION filegc.run_cleanup(text[], text, boolean, boolean, boolean, text) IS
    'Internal: what both cleanups do with their candidates: list them, or pass the breaker and schedule them';
COMMENT ON FUNCTION filegc.keep_in_dumps(regclass) IS
    'Internal: registers a table of operator data with pg_dump (inside CREATE or ALTER EXTENSION only)';

------------------------------------------------------------------------------
-- Alert deliveries (alerts.sql), and the sweeper's grants on them
------------------------------------------------------------------------------

-- The latest 200 deliveries: the record says how alerting fares now, not
-- its whole history (the logs have that).
CREATE TABLE filegc.alert_delivery_log (
    id bigserial PRIMARY KEY,
    finished_at timestamptz NOT NULL,
    worker text NOT NULL,
    level text NOT NULL,
    previous_level text NOT NULL,
    webhook_host text NOT NULL,
    attempts integer NOT NULL,
    error text
);
COMMENT ON TABLE filegc.alert_delivery_log IS
    'The latest alert deliveries of filegc run, delivered or given up; read filegc.alert_deliveries';

-- The record is the operator's data, as the runs are: pg_dump saves it.
SELECT filegc.keep_in_dumps(t)
  FROM unnest(ARRAY['filegc.alert_delivery_log', 'filegc.alert_delivery_log_id_seq']::regclass[]) AS t;

-- The run calls this when an alert arrived or its last try failed; a
-- failure met while the database was away is recorded once it is back, with
-- the time it happened. SECURITY DEFINER: the sweeper's role writes no table.
CREATE FUNCTION filegc.record_alert_delivery(
    worker text, finished_at timestamptz, level text, previous_level text,
    webhook_host text, attempts integer, error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO filegc.alert_delivery_log (finished_at, worker, level, previous_level, webhook_host, attempts, error)
    VALUES (record_alert_delivery.finished_at, record_alert_delivery.worker, record_alert_delivery.level,
            record_alert_delivery.previous_level, record_alert_delivery.webhook_host,
            record_alert_delivery.attempts, left(record_alert_delivery.error, 2000));
    DELETE FROM filegc.alert_delivery_log d
     WHERE d.id <= (SELECT k.id FROM filegc.alert_delivery_log k
                     ORDER BY k.id DESC OFFSET 200 LIMIT 1);
END
$$;
COMMENT ON FUNCTION filegc.record_alert_delivery(text, timestamptz, text, text, text, integer, text) IS
    'Sweeper protocol: records how the delivery of an alert to the webhook ended (error NULL when it arrived)';

CREATE VIEW filegc.alert_deliveries AS
SELECT d.finished_at,
       (d.error IS NULL) AS delivered,
       d.level,
       d.previous_level,
       d.webhook_host,
       d.attempts,
       d.error,
       d.worker
  FROM filegc.alert_delivery_log d
 ORDER BY d.finished_at DESC, d.id DESC;
COMMENT ON VIEW filegc.alert_deliveries IS
    'The latest alerts filegc run posted to alert_webhook_url, newest first: delivered, or given up after every try with the last error; the receiver is named by its host only';

REVOKE EXECUTE ON FUNCTION filegc.record_alert_delivery(text, timestamptz, text, text, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION filegc.record_alert_delivery(text, timestamptz, text, text, text, integer, text) TO filegc_sweeper;
GRANT SELECT ON filegc.alert_deliveries TO filegc_sweeper;
