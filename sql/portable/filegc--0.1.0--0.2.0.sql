-- The portable engine's changes in filegc 0.2.0, the counterpart of the
-- extension's Rust changes (run before filegc--0.1.0--0.2.0.sql, whose
-- statements then rebuild the indexes and the triggers with them).

-- The path rules: a query and a fragment are dropped from every value, and a
-- path too long to be indexed is an invalid reference (the rules of
-- path_rules/, which the extension and the sweeper share).
CREATE OR REPLACE FUNCTION filegc.normalize_ref(value text, prefixes text[], OUT path text, OUT problem text)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    url text[];
    decoded bytea := '';
    has_nul boolean := false;
    i integer;
    n integer;
    best_length integer := -1;
    best_rest text;
    prefix text;
    rest text;
    segment text;
    too_long boolean := false;
BEGIN
    IF value = '' THEN
        RETURN;
    END IF;
    -- A query and a fragment name nothing: the path ends before them.
    path := split_part(split_part(value, '?', 1), '#', 1);

    -- A URL is reduced to its path: no scheme, host, query or fragment.
    IF position('://' IN value) > 0 THEN
        url := regexp_match(value, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)');
    END IF;
    IF url IS NOT NULL THEN
        path := url[1];
        IF position('%' IN path) > 0 THEN
            i := 1;
            n := length(path);
            WHILE i <= n LOOP
                IF substr(path, i, 1) = '%' AND i + 2 <= n AND substr(path, i + 1, 2) ~ '^[0-9A-Fa-f]{2}$' THEN
                    -- text cannot hold NUL: a stand-in lets the UTF-8 check
                    -- come first, as in Rust, and the NUL is reported after.
                    IF substr(path, i + 1, 2) = '00' THEN
                        has_nul := true;
                        decoded := decoded || '\x01'::bytea;
                    ELSE
                        decoded := decoded || decode(substr(path, i + 1, 2), 'hex');
                    END IF;
                    i := i + 3;
                ELSE
                    decoded := decoded || convert_to(substr(path, i, 1), 'UTF8');
                    i := i + 1;
                END IF;
            END LOOP;
            BEGIN
                path := convert_from(decoded, 'UTF8');
            EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
                path := NULL;
                problem := 'percent-encoding does not decode to UTF-8';
                RETURN;
            END;
            IF has_nul THEN
                path := NULL;
                problem := 'contains a NUL byte';
                RETURN;
            END IF;
        END IF;
    END IF;

    -- The longest prefix that matches on a segment boundary.
    FOREACH prefix IN ARRAY prefixes LOOP
        CONTINUE WHEN prefix IS NULL OR prefix = '' OR left(path, length(prefix)) <> prefix;
        rest := substr(path, length(prefix) + 1);
        IF right(prefix, 1) <> '/' AND rest <> '' THEN
            CONTINUE WHEN left(rest, 1) <> '/';
            rest := substr(rest, 2);
        END IF;
        IF octet_length(prefix) > best_length THEN
            best_length := octet_length(prefix);
            best_rest := rest;
        END IF;
    END LOOP;
    IF best_length >= 0 THEN
        path := best_rest;
    END IF;

    WHILE left(path, 2) = './' LOOP
        path := substr(path, 3);
    END LOOP;

    problem := CASE
        WHEN path = '' THEN 'nothing is left after removing the URL parts and the prefix'
        WHEN position(E'\\' IN path) > 0 THEN 'contains a backslash'
        WHEN left(path, 1) = '/' THEN 'absolute path outside every configured prefix'
    END;
    -- A loop rather than a query over the segments: this runs for every
    -- value the triggers and the indexes see, and a query would start an
    -- executor each time.
    IF problem IS NULL THEN
        FOREACH segment IN ARRAY string_to_array(path, '/') LOOP
            IF segment = '..' THEN
                problem := 'contains a ''..'' segment';
                EXIT;
            ELSIF segment IN ('.', '') THEN
                problem := 'contains a ''.'' or empty segment';
                EXIT;
            ELSIF octet_length(segment) > 255 THEN
                too_long := true;
            END IF;
        END LOOP;
    END IF;
    IF problem IS NULL AND (too_long OR octet_length(path) > 2048) THEN
        problem := 'too long to be a file path (a name over 255 bytes, or over 2048 bytes in all)';
    END IF;
    IF problem IS NOT NULL THEN
        path := NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION filegc.normalize_ref(text, text[]) IS
    'The path a stored value references (relative to the volume root), or why it cannot be one';

-- The faces of the path rules the indexes call, and the trigger's reading
-- of a row's values: PL/pgSQL, which keeps its plans for the session.
CREATE OR REPLACE FUNCTION filegc.ref_path(value text, prefixes text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (filegc.normalize_ref(value, prefixes)).path;
END
$$;

CREATE OR REPLACE FUNCTION filegc.ref_paths(stored_values text[], prefixes text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT p COLLATE "C" ORDER BY p COLLATE "C"), '{}')
              FROM unnest(stored_values) AS v, filegc.normalize_ref(v, prefixes) AS n(p, problem)
             WHERE p IS NOT NULL);
END
$$;

CREATE OR REPLACE FUNCTION filegc.ref_path_problem(value text, prefixes text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (filegc.normalize_ref(value, prefixes)).problem;
END
$$;

CREATE OR REPLACE FUNCTION filegc.json_values(value jsonb, is_array boolean) RETURNS text[]
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

-- The row trigger: what extension/src/triggers.rs does, in PL/pgSQL. It
-- writes only notes (filegc.note_entered, filegc.note_released), and when a
-- tracked column cannot be read (renamed without the event trigger that
-- follows renames) it holds off every deletion instead of failing the
-- application's write.
CREATE OR REPLACE FUNCTION filegc.references_trigger() RETURNS trigger
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

COMMENT ON TABLE filegc.portable_install IS 'Internal: the version of this portable install; read filegc.version()';
COMMENT ON FUNCTION filegc.json_values(jsonb, boolean) IS
    'Internal, for the row trigger: a tracked column''s stored values from a row as JSON';
