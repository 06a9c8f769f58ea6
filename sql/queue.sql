-- filegc: the deletion queue and the final check. A tombstone is one
-- scheduled deletion (pending), claimed by a sweeper for a lease (claimed),
-- and settled (done with an outcome, cancelled, or failed after
-- max_attempts); filegc.pending and filegc.deletions show them.
--
-- The final check: every route that removes a file from the volume or from
-- the trash (a deletion the triggers, a cleanup, schedule_delete or a CLI
-- filter scheduled; the trash purge, trash.sql; empty-trash; the emergency
-- cleanup) decides with filegc.kept_among, under the locks of point 2 of the
-- lock protocol (references.sql) and with a fresh snapshot, and only while
-- filegc sees every row and every write of the tracked tables
-- (tracking.sql).
--
-- A test of membership in an array with one element per file of a batch is
-- written `x IN (SELECT unnest(arr))`, which PostgreSQL hashes; `x = ANY
-- (arr)` compares x with every element, row after row, once PL/pgSQL keeps a
-- generic plan (the same holds in notes.sql and trash.sql). The hash holds
-- only what fits in the work memory, so an array of any length (the paths
-- of filegc.kept_among, the notes of filegc.process_notes) is joined, or
-- subtracted with EXCEPT, instead.

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
COMMENT ON FUNCTION filegc.schedule_now(text[], text, boolean) IS
    'Internal: writes deletions due now for the given paths; returns the paths it scheduled';

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
