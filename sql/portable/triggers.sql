-- The portable engine's row and TRUNCATE triggers: what the extension's Rust
-- triggers do, in PL/pgSQL. filegc.install_triggers passes the tracked
-- columns as arguments: per column its name, 'array' or 'scalar', the number
-- of prefixes, then the prefixes.

-- The row trigger writes only notes (filegc.note_entered,
-- filegc.note_released), and when a tracked column cannot be read (renamed
-- without the event trigger that follows renames) it holds off every
-- deletion instead of failing the application's write.
CREATE FUNCTION filegc.references_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    arg integer := 0;
    column_name text;
    is_array boolean;
    prefix_count integer;
    prefixes text[];
    old_json jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    new_json jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
    old_values text[];
    new_values text[];
    old_paths text[] := '{}';
    new_paths text[] := '{}';
    old_raw text[] := '{}';
    invalid_columns text[] := '{}';
    invalid_values text[] := '{}';
    invalid_problems text[] := '{}';
    stored text;
    normalized record;
    changed boolean := false;
    added text[] := '{}';
    removed text[] := '{}';
    warned text;
    warned_count integer;
BEGIN
    WHILE arg < TG_NARGS LOOP
        column_name := TG_ARGV[arg];
        is_array := TG_ARGV[arg + 1] = 'array';
        prefix_count := TG_ARGV[arg + 2]::integer;
        prefixes := coalesce(TG_ARGV[arg + 3 : arg + 2 + prefix_count], '{}');
        arg := arg + 3 + prefix_count;
        IF (old_json IS NOT NULL AND NOT old_json ? column_name) OR (new_json IS NOT NULL AND NOT new_json ? column_name) THEN
            PERFORM filegc.hold_every_path(TG_RELID::regclass, column_name::name);
            RETURN NULL;
        END IF;
        old_values := CASE WHEN old_json IS NULL THEN '{}' ELSE filegc.json_values(old_json -> column_name, is_array) END;
        new_values := CASE WHEN new_json IS NULL THEN '{}' ELSE filegc.json_values(new_json -> column_name, is_array) END;
        changed := changed OR old_values IS DISTINCT FROM new_values OR TG_OP <> 'UPDATE';
        FOREACH stored IN ARRAY old_values LOOP
            old_raw := old_raw || stored;
            normalized := filegc.normalize_ref(stored, prefixes);
            IF normalized.path IS NOT NULL THEN
                old_paths := old_paths || normalized.path;
            END IF;
        END LOOP;
        FOREACH stored IN ARRAY new_values LOOP
            normalized := filegc.normalize_ref(stored, prefixes);
            IF normalized.path IS NOT NULL THEN
                new_paths := new_paths || normalized.path;
            ELSIF normalized.problem IS NOT NULL AND stored <> ALL (old_raw) THEN
                -- An UPDATE reports only values that are new to the row.
                invalid_columns := invalid_columns || column_name;
                invalid_values := invalid_values || stored;
                invalid_problems := invalid_problems || normalized.problem;
            END IF;
        END LOOP;
    END LOOP;
    IF NOT changed THEN
        RETURN NULL;
    END IF;

    -- The first invalid values of a transaction are warned about one by
    -- one, then once for the rest: a forgotten prefix makes every value of
    -- a bulk write invalid, and a warning each would flood the logs. The
    -- count lives in a setting local to the transaction; a value someone
    -- else set there counts as none.
    IF cardinality(invalid_values) > 0 THEN
        warned := current_setting('filegc.invalid_values_warned', true);
        warned_count := CASE WHEN warned ~ '^[0-9]{1,9}$' THEN warned::integer ELSE 0 END;
        FOR arg IN 1 .. cardinality(invalid_values) LOOP
            warned_count := warned_count + 1;
            IF warned_count <= 10 THEN
                RAISE WARNING 'filegc: %.%.% holds "%", which is not a file reference (%); it is recorded in filegc.invalid_refs and never counts as one. Check the prefixes given to filegc.track()',
                    TG_TABLE_SCHEMA, TG_TABLE_NAME, invalid_columns[arg], filegc.shown_value(invalid_values[arg]), invalid_problems[arg];
            ELSIF warned_count = 11 THEN
                RAISE WARNING 'filegc: more stored values in this transaction are not file references; they are recorded in filegc.invalid_refs without a warning each. Check the prefixes given to filegc.track()';
            END IF;
        END LOOP;
        PERFORM set_config('filegc.invalid_values_warned', least(warned_count, 11)::text, true);
    END IF;
    -- A row's few paths are compared in plain loops: a query would start an
    -- executor for every row. Many (a large array) go through queries,
    -- which do not compare every pair.
    IF cardinality(old_paths) + cardinality(new_paths) <= 16 THEN
        FOREACH stored IN ARRAY new_paths LOOP
            IF NOT (stored = ANY (old_paths) OR stored = ANY (added)) THEN
                added := added || stored;
            END IF;
        END LOOP;
        FOREACH stored IN ARRAY old_paths LOOP
            IF NOT (stored = ANY (new_paths) OR stored = ANY (removed)) THEN
                removed := removed || stored;
            END IF;
        END LOOP;
    ELSE
        added := ARRAY(SELECT DISTINCT p FROM unnest(new_paths) AS p WHERE p <> ALL (old_paths));
        removed := ARRAY(SELECT DISTINCT p FROM unnest(old_paths) AS p WHERE p <> ALL (new_paths));
    END IF;
    IF cardinality(added) > 0 OR cardinality(invalid_values) > 0 THEN
        PERFORM filegc.note_entered(TG_RELID::regclass, added, invalid_columns, invalid_values, invalid_problems);
    END IF;
    IF cardinality(removed) > 0 THEN
        PERFORM filegc.note_released(removed);
    END IF;
    RETURN NULL;
END
$$;

-- A column's stored values from a row as JSON: none for NULL, one for a
-- scalar, the non-NULL elements of an array. PL/pgSQL, so that a scalar
-- runs no query: an SQL function with a query in it is never inlined, and
-- was called as one for every column of every row.
CREATE FUNCTION filegc.json_values(value jsonb, is_array boolean) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF value IS NULL OR jsonb_typeof(value) = 'null' THEN
        RETURN '{}';
    ELSIF NOT is_array THEN
        RETURN ARRAY[value #>> '{}'];
    END IF;
    RETURN ARRAY(SELECT e FROM jsonb_array_elements_text(value) AS e WHERE e IS NOT NULL);
END
$$;
COMMENT ON FUNCTION filegc.json_values(jsonb, boolean) IS
    'Internal, for the row trigger: a tracked column''s stored values from a row as JSON';

-- BEFORE TRUNCATE, FOR EACH STATEMENT: the rows are still there, so their
-- paths are noted as released.
CREATE FUNCTION filegc.truncate_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM filegc.release_table(TG_RELID::regclass);
    RETURN NULL;
END
$$;
