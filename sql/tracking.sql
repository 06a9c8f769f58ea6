-- filegc: which columns hold file references, and keeping that true while
-- the application's schema changes. filegc.track() and filegc.untrack() are
-- the operator's; filegc.sync_tracking() follows what ALTER TABLE, CREATE
-- TABLE and DROP TRIGGER change (event_triggers.sql runs it); the final
-- check refuses to go on while filegc.tracking_problems() lists anything.

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
COMMENT ON FUNCTION filegc.find_reference_index(regclass, name, boolean, text[]) IS
    'Internal: an existing valid index on exactly the reference expression of a column, if there is one';

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
CREATE FUNCTION filegc.install_triggers(tbl regclass) RETURNS void
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
COMMENT ON FUNCTION filegc.install_triggers(regclass) IS
    'Internal: (re)creates the triggers of a table from its tracked columns';
-- The triggers it installs are the engine's (Rust, or sql/portable/triggers.sql).
COMMENT ON FUNCTION filegc.references_trigger() IS
    'Internal: the row trigger filegc.track() installs on tracked tables; it locks and notes the paths that enter and leave rows';
COMMENT ON FUNCTION filegc.truncate_trigger() IS
    'Internal: the TRUNCATE trigger filegc.track() installs on tracked tables; it notes the paths of the rows as released';

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
    'Stops tracking a column (and the same column of the table''s inheritance children): removes its triggers and the index filegc created, and notes every path the column held as released, so that the sweeper schedules those no other row references; returns how many it noted, and refuses past max_delete_fraction of the column''s paths unless force';

-- Brings filegc in step with schema changes that would otherwise leave rows
-- or writes out of its sight; the event trigger filegc_sync_tracking runs it
-- after every ALTER TABLE, CREATE TABLE and DROP TRIGGER, and without event
-- triggers (a portable install without a superuser) an operator does, as
-- the final check asks. It follows a renamed column, tracks the inheritance
-- children of tracked tables and a partition detached from one (what holds
-- filegc's index and is not tracked is tracked like the table whose index
-- it copies), makes filegc's triggers fire always again after ENABLE
-- TRIGGER (pg_restore runs it), and re-creates triggers that were dropped
-- or doubled. Disabled triggers stay disabled: the final check names them.
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

-- Keeps filegc.tracked in step when a tracked table or column is dropped
-- (the event trigger filegc_forget_dropped). The files that only the dropped rows
-- referenced become orphans: the orphan cleanup finds them (the rows are
-- gone before this runs, so they cannot be listed here).
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
    DELETE FROM filegc.invalid_values i
     WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = i.table_name);
END
$$;
COMMENT ON FUNCTION filegc.forget_dropped() IS
    'Internal: the event trigger filegc_forget_dropped, which forgets dropped tables and columns';

------------------------------------------------------------------------------
-- Seeing every row and every write
--
-- The final check (queue.sql) and every report go on only while filegc sees
-- every row and every write of the tracked tables; what keeps it from that
-- is listed here, each problem with its fix.
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
-- and row-level security that hides rows from filegc. PL/pgSQL, which
-- keeps the query's plan for the session: each claim and each final check
-- asks, and as a SQL function with a SET clause it was planned at every
-- call (3 ms). The functions it looks for are found by name, so that a plan
-- kept for the session stays right when an upgrade replaces them.
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
