-- The portable engine's row and TRUNCATE triggers: what extension/src/triggers.rs
-- does, in PL/pgSQL. filegc.install_triggers passes the tracked columns as
-- arguments: per column its name, 'array' or 'scalar', the number of
-- prefixes, then the prefixes.

-- The references and invalid values of one row: `values` holds the row's
-- tracked values, each tagged with its column index in `columns`.
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
    invalid_columns name[] := '{}';
    invalid_values text[] := '{}';
    invalid_problems text[] := '{}';
    stored text;
    normalized record;
    changed boolean := false;
BEGIN
    WHILE arg < TG_NARGS LOOP
        column_name := TG_ARGV[arg];
        is_array := TG_ARGV[arg + 1] = 'array';
        prefix_count := TG_ARGV[arg + 2]::integer;
        prefixes := coalesce(TG_ARGV[arg + 3 : arg + 2 + prefix_count], '{}');
        arg := arg + 3 + prefix_count;
        IF (old_json IS NOT NULL AND NOT old_json ? column_name) OR (new_json IS NOT NULL AND NOT new_json ? column_name) THEN
            RAISE EXCEPTION 'filegc: tracked column "%" is missing from table %.%', column_name, TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING HINT = 'Run filegc.track() with its new name, or filegc.untrack().';
        END IF;
        old_values := filegc.json_values(old_json -> column_name, is_array);
        new_values := filegc.json_values(new_json -> column_name, is_array);
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
            ELSIF normalized.problem IS NOT NULL THEN
                invalid_columns := invalid_columns || column_name::name;
                invalid_values := invalid_values || stored;
                invalid_problems := invalid_problems || normalized.problem;
            END IF;
        END LOOP;
    END LOOP;
    IF NOT changed THEN
        RETURN NULL;
    END IF;

    -- An UPDATE reports only values that are new to the row.
    FOR arg IN 1 .. coalesce(cardinality(invalid_values), 0) LOOP
        CONTINUE WHEN invalid_values[arg] = ANY (old_raw);
        RAISE WARNING 'filegc: %.%.% holds "%", which is not a file reference (%); it is recorded in filegc.invalid_refs and never counts as one. Check the prefixes given to filegc.track()',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, invalid_columns[arg], invalid_values[arg], invalid_problems[arg];
        PERFORM filegc.record_invalid_refs(TG_RELID::regclass, ARRAY[invalid_columns[arg]],
                                           ARRAY[invalid_values[arg]], ARRAY[invalid_problems[arg]]);
    END LOOP;

    PERFORM filegc.apply_reference_changes(
        ARRAY(SELECT DISTINCT p FROM unnest(old_paths) AS p WHERE p <> ALL (new_paths) ORDER BY p),
        ARRAY(SELECT DISTINCT p FROM unnest(new_paths) AS p WHERE p <> ALL (old_paths) ORDER BY p));
    RETURN NULL;
END
$$;

-- A column's stored values from a row as JSON: none for NULL, one for a
-- scalar, the non-NULL elements of an array.
CREATE FUNCTION filegc.json_values(value jsonb, is_array boolean) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN '{}'::text[]
        WHEN is_array THEN ARRAY(SELECT e FROM jsonb_array_elements_text(value) AS e WHERE e IS NOT NULL)
        ELSE ARRAY[value #>> '{}']
    END
$$;

-- BEFORE TRUNCATE, FOR EACH STATEMENT: schedules the paths only this table referenced.
CREATE FUNCTION filegc.truncate_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM filegc.release_table(TG_RELID::regclass);
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION filegc.references_trigger(), filegc.truncate_trigger() FROM PUBLIC;
