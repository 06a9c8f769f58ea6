-- filegc: the reports operators read from psql and the sweeper prints: every
-- file with its flags (referenced, orphan, eligible, managed), the orphans,
-- the broken references, the storage statistics with the alert level, the
-- old files. They read the inventory of the latest scan (inventory.sql) and
-- the application's rows (references.sql).

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
-- The protected names are asked with NOT EXISTS: PostgreSQL hashes them
-- when they fit in the work memory and otherwise probes their indexes,
-- where NOT IN read all of them again for every file (a prefix the
-- operator forgot makes every stored value such a name).
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
