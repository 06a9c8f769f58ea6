-- filegc: references (what the application's rows point at) and the lock
-- protocol that keeps the promise between the application's writers and the
-- sweeper.
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
-- Transaction-level advisory locks, in classes of their own (the two-key
-- form keeps filegc's keys apart from an application's single-bigint locks):
-- paths (filegc.path_lock_class(), keyed by filegc.path_lock_key), the file
-- names invalid references may mean (filegc.name_lock_class(), keyed by
-- hashtext of the name) and one escalation key (filegc.escalation_lock_class()).
--
-- 1. A writer's trigger takes the SHARED lock of every path that ENTERS a
--    row, and of the file name every invalid value it stores may mean
--    (filegc.note_entered; the extension's Rust triggers take the path
--    locks themselves, extension/src/writer_locks.rs, by the same classes,
--    keys and limit), and holds them until its transaction ends.
--    Shared locks never conflict with each other, so application
--    transactions never wait for one another here.
-- 2. The final check, before any route deletes a file (queue.sql,
--    trash.sql), tries the EXCLUSIVE locks of its path and its name
--    (filegc.lock_for_deletion) and of the escalation key, never waiting (a
--    busy path is retried later); then, with a fresh snapshot, it asks every
--    tracked column and the invalid values (filegc.kept_among), and the
--    sweeper deletes and commits while it holds the locks.
-- 3. Why that is enough. Take any row R that references path P and commits.
--    Its trigger took SHARED(P) before R's transaction committed.
--    - If the final check held EXCLUSIVE(P) first, R's trigger waited until
--      the sweeper committed: the file went before R was committed, so no
--      committed row referenced P then. The trigger notes P (an 'e' note),
--      and the sweeper asks the trashed copy back.
--    - Otherwise the check's try-lock fails until R's transaction ends, and
--      after that its fresh snapshot sees R and keeps the file.
--    This holds at every isolation level of the application, because the
--    check runs in the sweeper's own READ COMMITTED transaction; a writer at
--    REPEATABLE READ that cannot see the finished deletion has its copy
--    asked back by the next scan (filegc.request_restores). Writers only
--    wait and the check never does, so these locks cannot deadlock.
-- 4. Paths that LEAVE a row need no lock: the trigger notes each one (an
--    'r' note, notes.sql), and the sweeper, after the note's transaction
--    committed, schedules those no tracked column references with a fresh
--    snapshot (filegc.process_notes). A path another open transaction
--    removes too is noted by that transaction as well, so none is missed;
--    one that is referenced again by the time the deletion is due is kept
--    by point 2.
-- 5. A transaction that touches very many paths (a mass DELETE or INSERT,
--    TRUNCATE, untrack) would fill PostgreSQL's lock table with one lock per
--    path. Past filegc.max_path_locks() locks it takes one SHARED lock on the
--    escalation key instead of further path locks. The final check tries
--    EXCLUSIVE on that key too, so such a transaction holds off all
--    deletions until it ends, which keeps point 3 true.
------------------------------------------------------------------------------

-- The advisory-lock class of path locks ('fgc1'); the two-key form
-- keeps filegc's keys apart from an application's single-bigint locks.
CREATE FUNCTION filegc.path_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1718052657 $$;
COMMENT ON FUNCTION filegc.path_lock_class() IS
    'Internal: the advisory-lock class of path locks (points 1 and 2 of the lock protocol in references.sql)';

-- The advisory-lock class of the escalation lock ('fgc2').
CREATE FUNCTION filegc.escalation_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1718052658 $$;
COMMENT ON FUNCTION filegc.escalation_lock_class() IS
    'Internal: the advisory-lock class of the escalation lock a transaction takes past max_path_locks() path locks';

-- The advisory-lock class of the locks on the file names invalid references
-- may mean ('fgc4'): a writer holds SHARED on each name it stores, and the
-- final check tries EXCLUSIVE on the name of each file it deletes, as for
-- paths (points 1 to 3 of the lock protocol).
CREATE FUNCTION filegc.name_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1718052660 $$;
COMMENT ON FUNCTION filegc.name_lock_class() IS
    'Internal: the advisory-lock class of file names that invalid references may mean';

-- How many path locks one transaction takes before it escalates: PostgreSQL
-- sizes its lock table for max_locks_per_transaction (64 by default) each.
CREATE FUNCTION filegc.max_path_locks() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 64 $$;
COMMENT ON FUNCTION filegc.max_path_locks() IS
    'Internal: how many path locks one transaction takes before it escalates';

CREATE FUNCTION filegc.path_lock_key(path text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT pg_catalog.hashtext(path) $$;
COMMENT ON FUNCTION filegc.path_lock_key(text) IS
    'Internal: the advisory-lock key of a path, in the class filegc.path_lock_class()';

-- The count of a transaction's path locks (the portable engine's; the
-- extension's triggers count in the backend's memory) lives in a setting,
-- which any role can change: only a count this function could have written
-- is trusted, and anything else counts as escalated (the escalation lock is
-- taken, again), so no value makes a writer skip its locks.
CREATE FUNCTION filegc.reserve_path_locks(wanted integer) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
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
COMMENT ON FUNCTION filegc.reserve_path_locks(integer) IS
    'Internal, for the triggers: counts this transaction''s path locks; false, with the escalation lock taken, past max_path_locks()';

------------------------------------------------------------------------------
-- Asking the tracked columns
------------------------------------------------------------------------------

-- The expression that maps a tracked column to its references; the same text
-- builds the index, the probes and the listings, so the planner matches them.
CREATE FUNCTION filegc.reference_expression(col name, is_array boolean, prefixes text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format(CASE WHEN is_array THEN 'filegc.ref_paths(%I, %L::text[])'
                       ELSE 'filegc.ref_path(%I, %L::text[])' END,
                  col, prefixes)
$$;
COMMENT ON FUNCTION filegc.reference_expression(name, boolean, text[]) IS
    'Internal: the expression that maps a tracked column to its references, as the index, the probes and the listings use it';

-- The rows of a tracked table, as a FROM item: a partitioned table with its
-- partitions, any other without its inheritance children, which filegc
-- tracks as tables of their own (filegc.track() and filegc.sync_tracking()
-- see to it, and the final check refuses to go on while one is not).
CREATE FUNCTION filegc.rows_of(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN c.relkind = 'p' THEN tbl::text ELSE 'ONLY ' || tbl::text END FROM pg_class c WHERE c.oid = tbl
$$;
COMMENT ON FUNCTION filegc.rows_of(regclass) IS 'Internal: a tracked table''s rows as a FROM item';

-- A stored value's path is computed once per row: a flattened subquery
-- would repeat the expression in the select list and in the filter.
CREATE FUNCTION filegc.reference_rows_query(tbl regclass, columns filegc.tracked[]) RETURNS text
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
COMMENT ON FUNCTION filegc.reference_rows_query(regclass, filegc.tracked[]) IS
    'Internal: the query that lists (path, source) for the given tracked columns of one table';

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
COMMENT ON FUNCTION filegc.paths_in(regclass, filegc.tracked[]) IS
    'Internal: the distinct paths the given tracked columns of one table reference';

-- The query that finds which candidate paths ($1) no tracked column
-- references: one index probe per candidate and column. Built in PL/pgSQL,
-- which keeps the plan of its own query for the session (a SQL function with
-- a SET clause cannot be inlined and was planned at every call). A dropped
-- table is left out by a lookup in pg_class's index, written as a scalar
-- subquery: a join (or EXISTS, which becomes one) hashed all of pg_class at
-- every call. Each column is asked with a scalar subquery too: its caller
-- keeps a generic plan, which guesses ten candidate paths, and NOT EXISTS
-- let the planner turn that into a hash anti join against a sequential scan
-- of a small table, computing the reference of every row, dead ones
-- included. A scalar subquery is planned on its own, per candidate: an index
-- probe.
CREATE FUNCTION filegc.unreferenced_probe(excluded regclass DEFAULT NULL) RETURNS text
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
COMMENT ON FUNCTION filegc.unreferenced_probe(regclass) IS
    'Internal: the query that finds which candidate paths no tracked column references (one index probe per path and column)';

-- The paths among `paths` that no tracked column references.
CREATE FUNCTION filegc.unreferenced_among(paths text[], excluded regclass DEFAULT NULL) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $$
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
COMMENT ON FUNCTION filegc.unreferenced_among(text[], regclass) IS
    'Internal: the paths among the given ones that no tracked column references';

CREATE FUNCTION filegc.is_referenced(path text) RETURNS boolean
LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT cardinality(filegc.unreferenced_among(ARRAY[path])) = 0
$$;
COMMENT ON FUNCTION filegc.is_referenced(text) IS
    'True when a row of any tracked column references this path (relative to the volume root); probes each column''s index';

-- Every (path, source) of every tracked column.
CREATE FUNCTION filegc.reference_rows() RETURNS TABLE (path text, source text)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 100000 SET search_path = pg_catalog, pg_temp AS $$
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
COMMENT ON FUNCTION filegc.reference_rows() IS
    'Internal: every (path, source) of every tracked column, computed from the rows; read filegc.references';

CREATE VIEW filegc.references AS
SELECT r.path,
       count(*) AS refcount,
       array_agg(DISTINCT r.source ORDER BY r.source) AS sources
  FROM filegc.reference_rows() AS r
 GROUP BY r.path;
COMMENT ON VIEW filegc.references IS
    'Every referenced path with how many row values point at it and the table.column pairs they are in (computed from the rows)';
