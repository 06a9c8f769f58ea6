-- filegc: the cleanups operators run (the old tool's orphan and age
-- deletions, and exact paths from a CLI filter). Each lists its files on a
-- dry run, or passes the circuit breaker and schedules them; the sweeper
-- deletes them after the final check (queue.sql).

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
COMMENT ON FUNCTION filegc.require_scan() IS
    'Internal: raises an error until the sweeper has reported a scan of the volume';

-- The circuit breaker: one call may schedule at most max_delete_fraction of
-- the managed files in the latest scan, unless forced. Files filegc does
-- not manage are never deleted, so they do not count: a hundred log files
-- must not let a third of the images go. breaker_refusal says why it would
-- refuse, so that a dry run can say so before anyone is asked to confirm;
-- check_breaker refuses, with the SQLSTATE breaker_sqlstate(), by which the
-- sweeper tells a refusal from other errors and speaks its own options.
CREATE FUNCTION filegc.breaker_sqlstate() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'FG001' $$;
COMMENT ON FUNCTION filegc.breaker_sqlstate() IS
    'The SQLSTATE of a refusal by the circuit breaker (FG001)';

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
COMMENT ON FUNCTION filegc.breaker_refusal(bigint, bigint, text) IS
    'Why the circuit breaker would refuse to schedule file_count files (byte_count bytes) without force; NULL when it would not';

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
COMMENT ON FUNCTION filegc.check_breaker(bigint, bigint, boolean, text) IS
    'Internal: the circuit breaker; raises an error when a call would schedule more than max_delete_fraction of the managed files, unless forced';

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
COMMENT ON FUNCTION filegc.run_cleanup(text[], text, boolean, boolean, boolean, text) IS
    'Internal: what both cleanups do with their candidates: list them, or pass the breaker and schedule them';

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
