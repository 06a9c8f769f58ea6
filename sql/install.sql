-- filegc: what an install records about itself: which engine it is and its
-- version, and which tables pg_dump saves.

-- The extension and the portable install (sql/portable/) provide the same
-- schema; this says which one is here. The portable install records its
-- version in filegc.portable_install.
CREATE FUNCTION filegc.version(OUT engine text, OUT version text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT 'extension', e.extversion INTO engine, version FROM pg_extension e WHERE e.extname = 'filegc';
    IF NOT FOUND THEN
        engine := 'portable';
        EXECUTE 'SELECT version FROM filegc.portable_install' INTO version;
    END IF;
END
$$;
COMMENT ON FUNCTION filegc.version() IS 'Which filegc engine is installed (extension or portable) and its version';

-- Registers a table whose rows are the operator's data with pg_dump. Outside
-- CREATE/ALTER EXTENSION (a portable install) there is nothing to register.
CREATE FUNCTION filegc.keep_in_dumps(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_extension_config_dump(tbl, '');
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
COMMENT ON FUNCTION filegc.keep_in_dumps(regclass) IS
    'Internal: registers a table of operator data with pg_dump (inside CREATE or ALTER EXTENSION only)';

-- The tables whose rows are the operator's data, and their sequences:
-- pg_dump saves them, while CREATE EXTENSION recreates the rest on restore.
-- The notes are the operator's data too: an invalid value noted moments
-- before a dump protects the file it names after the restore.
SELECT filegc.keep_in_dumps(t) FROM unnest(ARRAY[
    'filegc.setting_overrides', 'filegc.tracked', 'filegc.tombstones', 'filegc.tombstones_id_seq',
    'filegc.invalid_values', 'filegc.notes', 'filegc.runs', 'filegc.runs_id_seq', 'filegc.inventory',
    'filegc.volume_reports', 'filegc.volume_reports_id_seq']::regclass[]) AS t;
