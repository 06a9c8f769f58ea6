-- filegc: the writers' side. Whatever the application's transaction does
-- with tracked values, its triggers take the shared locks of point 1 of the
-- lock protocol (references.sql) and write only into filegc.notes: a table
-- without a unique index or a row that anyone updates, so the application's
-- writes never wait for one another because of filegc, never deadlock
-- through it, and never fail with a serialization error at REPEATABLE READ
-- or SERIALIZABLE. The sweeper turns the notes into deletions,
-- cancellations, restore requests and recorded invalid values
-- (filegc.process_notes) before it claims anything.
--
-- The row triggers themselves are the engine's (Rust in the extension,
-- sql/portable/triggers.sql in the portable install); both call the
-- functions here.

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
COMMENT ON FUNCTION filegc.release_wake_pause() IS
    'Internal: how long a session that woke the sweeper for released paths waits before it wakes it again';

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
COMMENT ON FUNCTION filegc.wake_sweeper(boolean) IS
    'Internal: wakes a listening sweeper (NOTIFY filegc); for released paths at most once per release_wake_pause() per session';

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

-- Point 1 of the lock protocol, and the notes of what entered a row: the
-- SHARED lock of every path entering a row and of every file name an
-- invalid value entering it may mean. At READ COMMITTED a path is noted only
-- when a deletion of it may be open or its file in the trash (the sweeper
-- then cancels the deletion or brings the file back; a path that left a row
-- moments ago is not scheduled at all while a row references it again); at
-- REPEATABLE READ and SERIALIZABLE the writer reads nothing that other
-- transactions write, so it notes every path and lets the sweeper sort them
-- out. (Column names come as text: a name[] argument would give the call the
-- collation "C", and the path comparisons below could not use the
-- tombstones' index, which has the database's.)
CREATE FUNCTION filegc.note_entered(tbl regclass, paths text[], invalid_columns text[], invalid_values text[],
                                    invalid_problems text[])
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
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

-- Notes paths that left rows; the sweeper schedules those no row references
-- any more.
CREATE FUNCTION filegc.note_released(paths text[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
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
CREATE FUNCTION filegc.release_table(tbl regclass) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN filegc.note_released(
        filegc.paths_in(tbl, ARRAY(SELECT t FROM filegc.tracked t WHERE t.table_name = tbl)));
END
$$;
COMMENT ON FUNCTION filegc.release_table(regclass) IS
    'Internal, for the TRUNCATE trigger: notes every path of a table''s rows as released';

-- What filegc.track() finds in a column it starts tracking (the triggers
-- write notes instead).
CREATE FUNCTION filegc.record_invalid_refs(tbl regclass, columns name[], stored_values text[], problems text[])
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO filegc.invalid_values AS i (table_name, column_name, value, problem, value_key, name)
    SELECT DISTINCT ON (c, md5(v)) tbl, c, v, p, md5(v), filegc.protected_name(v)
      FROM unnest(columns, stored_values, problems) AS u(c, v, p)
        ON CONFLICT (table_name, column_name, value_key)
        DO UPDATE SET last_seen_at = now(), problem = EXCLUDED.problem
$$;
COMMENT ON FUNCTION filegc.record_invalid_refs(regclass, name[], text[], text[]) IS
    'Internal: records the invalid values filegc.track() finds in a column it starts tracking';

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
