-- filegc: who may do what. The application's roles get nothing: the
-- triggers run as filegc's owner (SECURITY DEFINER), so writing to a tracked
-- table needs no grant on schema filegc. The sweeper's role (filegc_sweeper,
-- created in schema.sql; grant it to the role the sweeper logs in as) gets
-- the reports and the functions of its protocol. PUBLIC loses every function
-- that schedules, deletes, takes filegc's locks or changes what is tracked;
-- the functions not named here only compute (path rules, lock keys, names)
-- or read what their caller may read already.

GRANT USAGE ON SCHEMA filegc TO filegc_sweeper;

-- Only filegc's own triggers and functions call these.
REVOKE EXECUTE ON FUNCTION
    filegc.references_trigger(),
    filegc.truncate_trigger(),
    filegc.reserve_path_locks(integer),
    filegc.note_entered(regclass, text[], text[], text[], text[]),
    filegc.note_released(text[]),
    filegc.hold_every_path(regclass, name),
    filegc.release_table(regclass),
    filegc.wake_sweeper(boolean),
    filegc.record_invalid_refs(regclass, name[], text[], text[]),
    filegc.install_triggers(regclass),
    filegc.forget_column(regclass, name, boolean),
    filegc.kept_among(text[]),
    filegc.lock_for_deletion(text),
    filegc.lock_for_trash_move(text[]),
    filegc.schedule_now(text[], text, boolean),
    filegc.run_cleanup(text[], text, boolean, boolean, boolean, text)
FROM PUBLIC;

-- Tracking changes the application's tables: for their owner (a superuser,
-- or the role that installed filegc).
REVOKE EXECUTE ON FUNCTION
    filegc.track(regclass, name, text[], boolean),
    filegc.untrack(regclass, name, boolean),
    filegc.sync_tracking()
FROM PUBLIC;

-- The sweeper's protocol and the cleanups: for the sweeper's role only.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'filegc.is_referenced(text)',
        'filegc.reference_rows()',
        'filegc.orphans_among(text[])',
        'filegc.cleanup_orphans(boolean, boolean)',
        'filegc.cleanup_older_than(integer, boolean, boolean, boolean)',
        'filegc.schedule_delete(text[], text, boolean)',
        'filegc.cancel(text)',
        'filegc.restore(text)',
        'filegc.start_run(text, text, text)',
        'filegc.finish_run(bigint, bigint, bigint, bigint, bigint)',
        'filegc.finish_scan(bigint, bigint)',
        'filegc.resume_scan(text, interval)',
        'filegc.listed_versions(text[])',
        'filegc.report_volume(text, text, bigint, bigint, bigint, bigint, bigint)',
        'filegc.process_notes()',
        'filegc.claim(text, integer)',
        'filegc.check_before_delete(text, bigint[])',
        'filegc.complete(text, bigint[], text[], bigint[])',
        'filegc.fail(text, bigint[], text[])',
        'filegc.restore_requests()',
        'filegc.request_restores(text[])',
        'filegc.purge_due(interval)',
        'filegc.check_before_purge(bigint[])',
        'filegc.check_before_restore(bigint[])',
        'filegc.check_before_bringing_back(text[])',
        'filegc.trash_done(bigint[], bigint[])',
        'filegc.tracking_problems()',
        'filegc.require_sound_tracking()',
        'filegc.record_alert_delivery(text, timestamptz, text, text, text, integer, text)']::regprocedure[]
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO filegc_sweeper', fn);
    END LOOP;
END
$$;

-- The reports the sweeper prints.
GRANT EXECUTE ON FUNCTION filegc.file_totals(), filegc.old_files(integer) TO filegc_sweeper;
GRANT SELECT ON filegc.settings, filegc.files, filegc.orphans, filegc.missing, filegc.pending, filegc.deletions,
                filegc.sweeps, filegc.storage_stats, filegc.references, filegc.tracked_columns, filegc.invalid_refs,
                filegc.alert_deliveries
TO filegc_sweeper;

-- The one table the sweeper writes directly: a scan's COPY needs INSERT.
GRANT INSERT ON filegc.inventory_staging TO filegc_sweeper;
