-- filegc 0.2.0: the inventory the sweeper reports, the views and functions
-- for operators, and the sweeper's queue protocol.
--
-- Each version's changes live in one upgrade script; a new install runs the
-- 0.1.0 files and then every upgrade script in order, so an upgraded database
-- and a new one are built by the very same statements.

------------------------------------------------------------------------------
-- Settings added in this version
------------------------------------------------------------------------------

ALTER TABLE filegc.setting_defaults DROP CONSTRAINT setting_defaults_kind_check;
ALTER TABLE filegc.setting_defaults
    ADD CONSTRAINT setting_defaults_kind_check CHECK (kind IN ('interval', 'fraction', 'percent', 'integer', 'text', 'patterns',
                                                               'boolean', 'window', 'url', 'integer_or_off'));

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
    ('emergency_cleanup', 'true', 'boolean',
     'When the alert level reaches emergency, filegc run empties the trash, then deletes the eligible orphans (never a referenced file)');

CREATE OR REPLACE FUNCTION filegc.validate_setting(setting_name text, proposed text) RETURNS void
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
        -- At most nine digits: the value becomes an integer.
        IF lower(trim(proposed)) <> 'off' AND trim(proposed) !~ '^0*[1-9][0-9]{0,8}$' THEN
            RAISE EXCEPTION 'filegc: setting "%" takes a whole number of at least 1, or off, not "%"', setting_name, proposed
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

-- Every function that writes a tombstone validates its path, but a superuser
-- can INSERT one directly; a path the sweeper must refuse would then be
-- claimed and failed again and again. The rules are those of
-- path_rules::validate_relative (not empty, no backslash, not absolute, no
-- empty, . or .. segment; text cannot hold NUL). NOT VALID: tombstones an
-- older version wrote stay readable history.
ALTER TABLE filegc.tombstones ADD CONSTRAINT tombstones_path_is_relative CHECK (
    path <> ''
    AND strpos(path, '\') = 0
    AND left(path, 1) <> '/'
    AND ('/' || path || '/') !~ '/\.{0,2}/'
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
    managed boolean
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
    modified_at timestamptz NOT NULL
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
    modified_at timestamptz
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

-- Every claim first fails the claims whose lease ran out for good; without
-- this index that meant reading every open tombstone, once per batch (most
-- of a 200,000-file sweep's time). Few tombstones are claimed at a time.
CREATE INDEX tombstones_claimed_lease ON filegc.tombstones (lease_until) WHERE state = 'claimed';

-- A trashed file comes back only while it is still in the trash.
CREATE OR REPLACE FUNCTION filegc.apply_reference_changes(removed text[], added text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(cardinality(added), 0) > 0 THEN
        PERFORM filegc.lock_entering_paths(added);
        UPDATE filegc.tombstones
           SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
               finished_at = CASE WHEN state = 'pending' THEN now() ELSE finished_at END,
               restore_requested_at = CASE WHEN state = 'done' THEN now() ELSE restore_requested_at END
         WHERE path = ANY (added)
           AND (state = 'pending'
                OR (state = 'done' AND outcome = 'trashed' AND restore_requested_at IS NULL
                    AND restored_at IS NULL AND purged_at IS NULL));
        IF FOUND THEN
            PERFORM pg_notify('filegc', 'restore');
        END IF;
    END IF;
    -- An INSERT removes nothing: skip three function calls on the hot path.
    IF coalesce(cardinality(removed), 0) > 0 THEN
        PERFORM filegc.release_paths(removed);
    END IF;
END
$$;

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

-- File names that an invalid reference may mean: a value that failed to
-- normalize still names its file in its last segment.
CREATE VIEW filegc.protected_names AS
SELECT DISTINCT filegc.file_name(replace(value, '\', '/')) AS file_name
  FROM filegc.invalid_refs;
COMMENT ON VIEW filegc.protected_names IS
    'File names that an invalid reference (filegc.invalid_refs) may mean; such files are never orphans';

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
                          t.table_name,
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
-- The delay is read once, not once per path.
CREATE OR REPLACE FUNCTION filegc.schedule_unreferenced(paths text[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scheduled integer;
    delay interval := filegc.setting('unreferenced_delay')::interval;
BEGIN
    IF coalesce(cardinality(paths), 0) = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO filegc.tombstones (path, reason, due_at)
    SELECT p, 'unreferenced', now() + delay
      FROM unnest(paths) AS p
        ON CONFLICT (path) WHERE state IN ('pending', 'claimed') DO NOTHING;
    GET DIAGNOSTICS scheduled = ROW_COUNT;
    IF scheduled > 0 THEN
        PERFORM pg_notify('filegc', 'scheduled');
    END IF;
    RETURN scheduled;
END
$$;

ALTER FUNCTION filegc.apply_reference_changes(text[], text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.lock_entering_paths(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.contested_leaving_paths(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.reserve_path_locks(integer) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.schedule_unreferenced(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION filegc.release_paths(text[], regclass) SET plan_cache_mode = force_generic_plan;
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
                      format('%s.%I', tbl, t.column_name), tbl),
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
-- here, once, and the orphan flag reuses the result.
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
                AND filegc.file_name(s.path) NOT IN (SELECT file_name FROM filegc.protected_names)) AS orphan
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

CREATE VIEW filegc.pending AS
SELECT t.id, t.path, t.reason, t.state, t.include_referenced, t.created_at, t.due_at,
       t.claimed_by AS worker, t.lease_until, t.attempts, t.last_error, i.size_bytes
  FROM filegc.tombstones t
  LEFT JOIN filegc.inventory i ON i.path = t.path
 WHERE t.state IN ('pending', 'claimed');
COMMENT ON VIEW filegc.pending IS 'Deletions scheduled and not finished yet (pending or claimed by a sweeper)';

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
-- the files in the latest scan, unless forced.
CREATE FUNCTION filegc.check_breaker(file_count bigint, byte_count bigint, force boolean, what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scanned bigint := (SELECT count(*) FROM filegc.inventory);
    fraction numeric := filegc.setting('max_delete_fraction')::numeric;
BEGIN
    IF force OR file_count = 0 OR file_count <= fraction * scanned THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'filegc: circuit breaker: % would delete % of the % files in the latest scan (%), more than max_delete_fraction (%)',
        what, file_count, scanned, pg_size_pretty(byte_count), fraction
        USING HINT = 'Check the list with dry_run => true first. If it is right, call again with force => true, '
                     'or raise the limit: UPDATE filegc.settings SET value = ''0.5'' WHERE name = ''max_delete_fraction''.';
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
        ON CONFLICT (path) WHERE state IN ('pending', 'claimed') DO NOTHING
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
BEGIN
    IF NOT dry_run THEN
        PERFORM filegc.check_breaker(
            cardinality(candidate_paths),
            (SELECT coalesce(sum(i.size_bytes), 0)::bigint
               FROM filegc.inventory i JOIN unnest(candidate_paths) AS c(path) ON c.path = i.path),
            force, what);
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

CREATE FUNCTION filegc.schedule_delete(paths text[], reason text DEFAULT 'manual') RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    valid text[];
    free text[];
    scheduled integer;
BEGIN
    IF reason NOT IN ('manual', 'orphan', 'expired', 'unreferenced') THEN
        RAISE EXCEPTION 'filegc.schedule_delete: reason must be manual, orphan, expired or unreferenced, not "%"', reason;
    END IF;
    valid := ARRAY(SELECT DISTINCT p FROM unnest(paths) AS p WHERE filegc.ref_path(p, '{}') IS NOT DISTINCT FROM p AND p IS NOT NULL);
    IF cardinality(valid) < cardinality(paths) THEN
        RAISE NOTICE 'filegc.schedule_delete: skipped % paths that are not plain paths relative to the volume root',
            cardinality(paths) - cardinality(valid);
    END IF;
    free := filegc.unreferenced_among(valid);
    IF cardinality(free) < cardinality(valid) THEN
        RAISE NOTICE 'filegc.schedule_delete: skipped % referenced paths', cardinality(valid) - cardinality(free);
    END IF;
    SELECT count(*) INTO scheduled FROM filegc.schedule_now(free, reason);
    RETURN scheduled;
END
$$;
COMMENT ON FUNCTION filegc.schedule_delete(text[], text) IS
    'Schedules the deletion of the given paths (relative to the volume root), skipping referenced and malformed ones; returns how many it scheduled';

CREATE FUNCTION filegc.cancel(path text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
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
    INSERT INTO filegc.scan_changes (path, vanished, appeared, size_bytes, modified_at)
    SELECT coalesce(s.path, i.path), s.path IS NULL, i.path IS NULL, s.size_bytes, s.modified_at
      FROM (SELECT * FROM filegc.inventory_staging st WHERE st.scan_id = finish_scan.scan_id) AS s
      FULL JOIN filegc.inventory i ON i.path = s.path
     WHERE s.path IS NULL OR i.path IS NULL
        OR (i.size_bytes, i.modified_at) IS DISTINCT FROM (s.size_bytes, s.modified_at);
    ANALYZE filegc.scan_changes;
    DELETE FROM filegc.inventory i
     USING filegc.scan_changes c
     WHERE c.vanished AND i.path = c.path;
    UPDATE filegc.inventory i
       SET size_bytes = c.size_bytes, modified_at = c.modified_at, scan_id = finish_scan.scan_id
      FROM filegc.scan_changes c
     WHERE NOT c.vanished AND NOT c.appeared AND i.path = c.path;
    INSERT INTO filegc.inventory (path, size_bytes, modified_at, first_seen_at, scan_id, managed)
    SELECT c.path, c.size_bytes, c.modified_at, now(), finish_scan.scan_id, c.path ~* managed_regex
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

-- Claims up to `batch_size` due tombstones for `worker` for one lease.
-- Tombstones whose lease ran out after max_attempts tries become failed.
CREATE FUNCTION filegc.claim(worker text, batch_size integer)
RETURNS TABLE (id bigint, path text, reason text, include_referenced boolean, attempts integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- Read once: a setting read in the row's expressions is a function call per row.
    lease_length interval := filegc.setting('lease')::interval;
    max_attempts integer := filegc.setting('max_attempts')::integer;
BEGIN
    UPDATE filegc.tombstones t
       SET state = 'failed', finished_at = now(),
           last_error = coalesce(t.last_error, 'the sweeper that claimed it stopped before finishing')
                        || format(' (gave up after %s attempts)', t.attempts)
     WHERE t.state = 'claimed' AND t.lease_until < now()
       AND t.attempts >= max_attempts;
    RETURN QUERY
    WITH due AS (
        SELECT d.id FROM filegc.tombstones d
         WHERE d.state IN ('pending', 'claimed') AND d.due_at <= now()
           AND (d.state = 'pending' OR d.lease_until < now())
         ORDER BY d.due_at
         LIMIT batch_size
           FOR UPDATE SKIP LOCKED
    )
    UPDATE filegc.tombstones t
       SET state = 'claimed', claimed_by = worker,
           lease_until = now() + lease_length, attempts = t.attempts + 1
      FROM due
     WHERE t.id = due.id
    RETURNING t.id, t.path, t.reason, t.include_referenced, t.attempts;
END
$$;
COMMENT ON FUNCTION filegc.claim(text, integer) IS
    'Sweeper protocol: claims due deletions for one lease (FOR UPDATE SKIP LOCKED)';

-- The final check, in the transaction in which the sweeper deletes (see the
-- lock protocol in references.sql). For each claimed tombstone it returns
-- `delete`, or settles it at once: `referenced` (done, skipped_referenced),
-- `busy` (back to pending: a writer holds the path), `lost` (the lease went
-- to another sweeper). The tombstone rows stay locked until the sweeper's
-- transaction ends, so no other sweeper can reclaim them meanwhile.
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
    free_paths text[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'filegc.check_before_delete needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING HINT = 'Its check must see rows committed after the transaction began.';
    END IF;
    SELECT coalesce(array_agg(t.id), '{}') INTO mine
      FROM (SELECT x.id FROM filegc.tombstones x
             WHERE x.id = ANY (ids) AND x.state = 'claimed' AND x.claimed_by = worker
             ORDER BY x.id FOR UPDATE) AS t;
    escalation_free := pg_try_advisory_xact_lock(filegc.escalation_lock_class(), 0);

    SELECT array_agg(t.id ORDER BY t.id), array_agg(t.path ORDER BY t.id), array_agg(t.attempts ORDER BY t.id),
           array_agg(CASE WHEN NOT (t.id = ANY (mine)) THEN 'lost'
                          WHEN NOT escalation_free THEN 'busy'
                          WHEN NOT pg_try_advisory_xact_lock(filegc.path_lock_class(), filegc.path_lock_key(t.path)) THEN 'busy'
                          WHEN t.reason = 'expired' AND t.include_referenced THEN 'delete'
                          ELSE 'check' END ORDER BY t.id)
      INTO batch_ids, batch_paths, batch_attempts, verdicts
      FROM filegc.tombstones t
     WHERE t.id = ANY (ids);

    -- A new statement, so a new snapshot, taken after the locks above.
    free_paths := filegc.unreferenced_among(
        ARRAY(SELECT u.p FROM unnest(batch_paths, verdicts) AS u(p, v) WHERE u.v = 'check'));

    RETURN QUERY
    WITH settled AS (
        SELECT u.i, u.p, u.a,
               CASE WHEN u.v <> 'check' THEN u.v WHEN u.p = ANY (free_paths) THEN 'delete' ELSE 'referenced' END AS v
          FROM unnest(batch_ids, batch_paths, batch_attempts, verdicts) AS u(i, p, a, v)
    ), skipped AS (
        UPDATE filegc.tombstones t
           SET state = 'done', outcome = 'skipped_referenced', bytes_freed = 0, finished_at = now()
          FROM settled s
         WHERE s.i = t.id AND s.v = 'referenced'
    ), released AS (
        UPDATE filegc.tombstones t
           SET state = 'pending', claimed_by = NULL, lease_until = NULL, attempts = t.attempts - 1
          FROM settled s
         WHERE s.i = t.id AND s.v = 'busy'
    ), wanted_back AS (
        -- A path referenced again whose file an earlier deletion trashed: the
        -- trigger asks for it back, but not when that deletion was still in
        -- flight at the time; asking here covers that case too.
        UPDATE filegc.tombstones t
           SET restore_requested_at = now()
          FROM settled s
         WHERE s.v = 'referenced' AND t.path = s.p AND t.id <> s.i
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
    'Sweeper protocol: under the path locks and with a fresh snapshot, says which claimed deletions may go ahead (how many times each was claimed, and whether another deletion recorded the trashed copy of its path)';

-- Records what the sweeper did, one call per batch.
CREATE FUNCTION filegc.complete(worker text, ids bigint[], outcomes text[], bytes bigint[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
-- tries each path's EXCLUSIVE lock (the sweeper holds them until it has
-- unlinked the copies and recorded them with trash_done in the same
-- transaction) and then, in a new snapshot, keeps every copy that is asked
-- back or whose path a row references. It never waits: a row another
-- transaction is changing, or a path a writer holds, is 'busy' and waits for
-- the next pass. A referenced path's copy is asked back here, for the
-- restore pass.
CREATE FUNCTION filegc.check_before_purge(ids bigint[])
RETURNS TABLE (id bigint, path text, verdict text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    locked_ids bigint[];
    locked_paths text[];
    free_paths text[];
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'filegc.check_before_purge needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING HINT = 'Its check must see rows committed after the transaction began.';
    END IF;
    IF pg_try_advisory_xact_lock(filegc.escalation_lock_class(), 0) THEN
        SELECT coalesce(array_agg(t.id ORDER BY t.id), '{}'), coalesce(array_agg(t.path ORDER BY t.id), '{}')
          INTO locked_ids, locked_paths
          FROM (SELECT x.id, x.path FROM filegc.tombstones x
                 WHERE x.id = ANY (ids) AND x.state = 'done' AND x.outcome = 'trashed'
                   AND x.purged_at IS NULL AND x.restored_at IS NULL AND x.restore_requested_at IS NULL
                 ORDER BY x.id FOR UPDATE SKIP LOCKED) AS t
         WHERE pg_try_advisory_xact_lock(filegc.path_lock_class(), filegc.path_lock_key(t.path));
    ELSE
        locked_ids := '{}';
        locked_paths := '{}';
    END IF;

    -- A new statement, so a new snapshot, taken after the locks above.
    free_paths := filegc.unreferenced_among(locked_paths);
    UPDATE filegc.tombstones x SET restore_requested_at = now()
     WHERE x.id = ANY (locked_ids) AND NOT (x.path = ANY (free_paths));
    IF FOUND THEN
        PERFORM pg_notify('filegc', 'restore');
    END IF;

    RETURN QUERY
    SELECT x.id, x.path,
           CASE WHEN NOT (x.id = ANY (locked_ids)) THEN 'busy'
                WHEN x.path = ANY (free_paths) THEN 'purge'
                ELSE 'referenced' END
      FROM filegc.tombstones x
     WHERE x.id = ANY (ids)
     ORDER BY x.id;
END
$$;
COMMENT ON FUNCTION filegc.check_before_purge(bigint[]) IS
    'Sweeper protocol: under the path locks and with a fresh snapshot, says which trashed copies may be unlinked for good (purge), and asks back those a row references again';

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
        'filegc.schedule_delete(text[], text)',
        'filegc.cancel(text)',
        'filegc.restore(text)',
        'filegc.start_run(text, text, text)',
        'filegc.finish_run(bigint, bigint, bigint, bigint, bigint)',
        'filegc.finish_scan(bigint, bigint)',
        'filegc.report_volume(text, text, bigint, bigint, bigint, bigint, bigint)',
        'filegc.claim(text, integer)',
        'filegc.check_before_delete(text, bigint[])',
        'filegc.complete(text, bigint[], text[], bigint[])',
        'filegc.fail(text, bigint[], text[])',
        'filegc.restore_requests()',
        'filegc.purge_due(interval)',
        'filegc.check_before_purge(bigint[])',
        'filegc.trash_done(bigint[], bigint[])']::regprocedure[]
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO filegc_sweeper', fn);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION filegc.schedule_now(text[], text, boolean) FROM PUBLIC;
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

SELECT filegc.keep_in_dumps(t) FROM unnest(ARRAY[
    'filegc.runs', 'filegc.runs_id_seq', 'filegc.inventory',
    'filegc.volume_reports', 'filegc.volume_reports_id_seq']::regclass[]) AS t;
