-- filegc: every table, in its current shape, with its indexes and
-- constraints. The functions and views that use them are in the file named
-- for each concept (settings.sql, references.sql, notes.sql, queue.sql,
-- trash.sql, inventory.sql, reports.sql). The extension's control file
-- creates the schema `filegc`; the portable install creates it itself.
--
-- The columns that later releases added come last in each table, where an
-- upgrade puts them: a new install and an upgraded one have the same rows.

-- The role the sweeper logs in as (or is granted to). It gets exactly the
-- functions the sweeper calls and nothing of the application's tables
-- (grants.sql). Roles are shared by all databases of a cluster, so another
-- database may be creating the same role right now.
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

------------------------------------------------------------------------------
-- Settings
--
-- Defaults belong to filegc; overrides belong to the operator. Keeping them
-- apart lets pg_dump save only the overrides (a dumped default would collide
-- with the row CREATE EXTENSION writes on restore). The rows and the checks
-- are in settings.sql.
------------------------------------------------------------------------------

CREATE TABLE filegc.setting_defaults (
    name text PRIMARY KEY,
    default_value text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('interval', 'fraction', 'percent', 'integer', 'text', 'patterns',
                                       'boolean', 'window', 'url', 'integer_or_off',
                                       'webhook_format')),
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

------------------------------------------------------------------------------
-- Tracked columns: which application columns hold file references
-- (tracking.sql).
------------------------------------------------------------------------------

CREATE TABLE filegc.tracked (
    table_name regclass NOT NULL,
    column_name name NOT NULL,
    is_array boolean NOT NULL,
    prefixes text[] NOT NULL DEFAULT '{}',
    index_name name NOT NULL,
    index_created_by_filegc boolean NOT NULL,
    tracked_at timestamptz NOT NULL DEFAULT now(),
    -- The column's number, to follow a rename: its name is what every query
    -- and every dump uses, its number what a rename keeps.
    attnum smallint,
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE filegc.tracked IS 'The columns filegc.track() registered; read filegc.tracked_columns';
COMMENT ON COLUMN filegc.tracked.attnum IS 'The column''s number, by which filegc.sync_tracking() follows a rename';

------------------------------------------------------------------------------
-- Tombstones: files scheduled for deletion, and the audit trail of each
-- (queue.sql, trash.sql).
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
    -- What a deletion came to. A file is also kept when an invalid reference
    -- may name it (skipped_protected) and when filegc no longer manages it
    -- (skipped_unmanaged), whatever the patterns were when its deletion was
    -- scheduled.
    outcome text CHECK (outcome IN ('deleted', 'trashed', 'already_gone', 'skipped_referenced', 'skipped_protected',
                                    'skipped_unmanaged')),
    bytes_freed bigint,
    finished_at timestamptz,
    restore_requested_at timestamptz,
    restored_at timestamptz,
    purged_at timestamptz,
    CHECK ((state IN ('done', 'cancelled', 'failed')) = (finished_at IS NOT NULL)),
    CHECK ((state = 'done') = (outcome IS NOT NULL))
) WITH (fillfactor = 50);
COMMENT ON TABLE filegc.tombstones IS
    'Files scheduled for deletion (pending, claimed) and what became of them (done, cancelled, failed)';
-- A claim changes no column that an index holds or a predicate reads, and
-- each page keeps room for a second version of its rows (the fillfactor),
-- so claiming is a HOT update that writes no index entry: a third of its
-- cost. An open tombstone is one whose finished_at is NULL (the CHECK above
-- ties it to the state). At most one open tombstone per path
-- (filegc.process_notes and the cleanups rely on it for ON CONFLICT).
CREATE UNIQUE INDEX tombstones_open_path ON filegc.tombstones (path) WHERE finished_at IS NULL;
CREATE INDEX tombstones_due ON filegc.tombstones (due_at) WHERE finished_at IS NULL;
CREATE INDEX tombstones_path ON filegc.tombstones (path);
-- Every function that writes a tombstone validates its path, but a superuser
-- can INSERT one directly; a path the sweeper must refuse would then be
-- claimed and failed again and again. The rules are those of
-- path_rules::validate_relative (not empty, no backslash, not absolute, no
-- empty, . or .. segment, not too long; text cannot hold NUL). NOT VALID, as
-- an upgrade adds it: tombstones 0.1.0 wrote stay readable history.
ALTER TABLE filegc.tombstones ADD CONSTRAINT tombstones_path_is_relative CHECK (
    path <> ''
    AND strpos(path, '\') = 0
    AND left(path, 1) <> '/'
    AND ('/' || path || '/') !~ '/\.{0,2}/'
    AND filegc.path_fits(path)
) NOT VALID;

------------------------------------------------------------------------------
-- Stored values that cannot be references, once processed (notes.sql). A
-- value of any length is recorded: rows are told apart by a digest of it, as
-- an index on the value itself would refuse long ones.
------------------------------------------------------------------------------

CREATE TABLE filegc.invalid_values (
    table_name regclass NOT NULL,
    column_name name NOT NULL,
    value text NOT NULL,
    problem text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    value_key text NOT NULL,
    name text
);
COMMENT ON TABLE filegc.invalid_values IS
    'Internal: stored values that cannot be references, as processed from the notes; read filegc.invalid_refs';
COMMENT ON COLUMN filegc.invalid_values.name IS 'The file name the value may mean: such files are never deleted';
CREATE UNIQUE INDEX invalid_values_key ON filegc.invalid_values (table_name, column_name, value_key);
CREATE INDEX invalid_values_name ON filegc.invalid_values (name);

------------------------------------------------------------------------------
-- What the triggers saw in the application's transactions, until the
-- sweeper processes it (notes.sql). No unique index and no row anyone
-- updates: two writers never wait for each other here.
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

------------------------------------------------------------------------------
-- What the sweeper reports: runs, the inventory, the volume's capacity
-- (inventory.sql, reports.sql).
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
