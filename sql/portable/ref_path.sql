-- The portable engine's path rules: the same rules as the Rust path rules the
-- extension and the sweeper share, in PL/pgSQL, for a PostgreSQL that cannot
-- load the extension. Both must agree exactly: tests check them against the
-- shared vectors (tests/data/ref_path_vectors.tsv) and against each other on
-- generated input.

-- What a stored value means: the path it references, or why it cannot be one;
-- both NULL when the value is empty (not a reference at all). A query and a
-- fragment are dropped from every value, and a path too long to be indexed
-- is an invalid reference.
CREATE FUNCTION filegc.normalize_ref(value text, prefixes text[], OUT path text, OUT problem text)
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

-- The three faces below run as their owner: the indexes on tracked columns
-- evaluate ref_path for the application's role, which has no USAGE on the
-- schema filegc (the extension's C functions need none). They are PL/pgSQL,
-- which keeps its plans for the session: an SQL function with a SET clause
-- is never inlined, and an index expression calling one parsed and planned
-- its body again in every INSERT (28 us of a row's 2 paths, measured).
CREATE FUNCTION filegc.ref_path(value text, prefixes text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (filegc.normalize_ref(value, prefixes)).path;
END
$$;

CREATE FUNCTION filegc.ref_paths(stored_values text[], prefixes text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT p COLLATE "C" ORDER BY p COLLATE "C"), '{}')
              FROM unnest(stored_values) AS v, filegc.normalize_ref(v, prefixes) AS n(p, problem)
             WHERE p IS NOT NULL);
END
$$;

CREATE FUNCTION filegc.ref_path_problem(value text, prefixes text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (filegc.normalize_ref(value, prefixes)).problem;
END
$$;
