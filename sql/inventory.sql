-- filegc: what the sweeper reports about the volume: each run (scan, sweep,
-- purge, scheduled cleanup), the files of the latest complete scan, and the
-- volume's capacity. The reports over them are in reports.sql.

CREATE FUNCTION filegc.start_run(kind text, worker text, volume_path text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO filegc.runs (kind, worker, volume_path) VALUES (kind, worker, volume_path) RETURNING id
$$;
COMMENT ON FUNCTION filegc.start_run(text, text, text) IS
    'Sweeper protocol: records the start of a scan, sweep, purge or scheduled cleanup; returns its id';

CREATE FUNCTION filegc.finish_run(run_id bigint, files_seen bigint, files_deleted bigint, bytes_freed bigint, errors bigint)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE filegc.runs
       SET finished_at = now(), files_seen = $2, files_deleted = $3, bytes_freed = $4, errors = $5
     WHERE id = run_id AND finished_at IS NULL
$$;
COMMENT ON FUNCTION filegc.finish_run(bigint, bigint, bigint, bigint, bigint) IS
    'Sweeper protocol: records the end of a run and what it did';

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
COMMENT ON FUNCTION filegc.resume_scan(text, interval) IS
    'Sweeper protocol: the unfinished scan of a bucket a listing resumes, and the last path it committed';

-- The versions of `paths` the latest listing of a bucket saw, for a sweep
-- to delete those versions and no other: an object written again at its
-- key since (an upload whose row has not committed yet) is not the one its
-- deletion was scheduled for, and stays until a listing has seen it.
CREATE FUNCTION filegc.listed_versions(paths text[])
RETURNS TABLE (path text, size_bytes bigint, etag text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.path, i.size_bytes, i.etag FROM filegc.inventory i WHERE i.path = ANY (paths) AND i.etag IS NOT NULL
$$;
COMMENT ON FUNCTION filegc.listed_versions(text[]) IS
    'Sweeper protocol: the size and ETag the latest listing of a bucket gave each of these paths';

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
COMMENT ON FUNCTION filegc.finish_scan(bigint, bigint) IS
    'Sweeper protocol: merges the files a scan copied into filegc.inventory_staging into the inventory and finishes the run';

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

CREATE VIEW filegc.sweeps AS
SELECT id, kind, worker, volume_path, started_at, finished_at, files_seen, files_deleted, bytes_freed, errors
  FROM filegc.runs;
COMMENT ON VIEW filegc.sweeps IS 'The history of scans, sweeps, trash purges and scheduled cleanups (orphan_cleanup, retention_cleanup: files_seen counts the files scheduled)';
