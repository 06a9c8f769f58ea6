-- filegc: event triggers that keep filegc in step with the application's
-- schema (tracking.sql): filegc_forget_dropped forgets a dropped table or
-- column, filegc_sync_tracking follows renamed columns, new inheritance
-- children, detached partitions, re-enabled and dropped triggers. Creating
-- an event trigger needs a superuser, as CREATE EXTENSION filegc does; a
-- portable install by another role goes without them, and the final check
-- then names what filegc.sync_tracking() would fix.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER filegc_forget_dropped ON sql_drop
            EXECUTE FUNCTION filegc.forget_dropped();
        CREATE EVENT TRIGGER filegc_sync_tracking ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'DROP TRIGGER')
            EXECUTE FUNCTION filegc.sync_tracking_after_ddl();
    ELSE
        RAISE NOTICE 'filegc: not a superuser, so no event triggers: after renaming a tracked column, detaching a partition of a tracked table or creating an inheritance child of one, run SELECT filegc.sync_tracking(); after DROP TABLE of a tracked table, DELETE FROM filegc.tracked WHERE NOT EXISTS (SELECT FROM pg_class WHERE oid = table_name)';
    END IF;
END
$$;
