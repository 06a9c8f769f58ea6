-- filegc: the trash. A deleted file waits in .filegc-trash/ on the volume
-- for trash_retention; a restore request (filegc.restore, a row that
-- references the path again, a scan that finds a copy a row needs) brings it
-- back, and the purge unlinks it for good only after the same final check
-- as a deletion (queue.sql).

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

-- Trashed files that someone asked back (filegc.restore, or a row that
-- references the path again).
CREATE FUNCTION filegc.restore_requests()
RETURNS TABLE (id bigint, path text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.id, t.path FROM filegc.tombstones t
     WHERE t.restore_requested_at IS NOT NULL AND t.restored_at IS NULL AND t.purged_at IS NULL
     ORDER BY t.id
$$;
COMMENT ON FUNCTION filegc.restore_requests() IS
    'Sweeper protocol: the trashed files someone asked back';

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
COMMENT ON FUNCTION filegc.purge_due(interval) IS
    'Sweeper protocol: trashed files older than trash_retention that nobody asked back';

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
COMMENT ON FUNCTION filegc.trash_done(bigint[], bigint[]) IS
    'Sweeper protocol: records the restores and purges of a batch';
