-- filegc: what SQL needs to know about paths, beside the path rules.
--
-- The path rules themselves (what a stored value references, and why a value
-- is no reference) are the engine's: filegc.ref_path, filegc.ref_paths and
-- filegc.ref_path_problem, in Rust for the extension (path_rules/) and in
-- PL/pgSQL for the portable install (sql/portable/ref_path.sql). The
-- functions here only read paths those rules made, and come first because
-- the tables' constraints use them.

-- The last segment of a path (its file name), without a regular expression:
-- the views compute it for every file.
CREATE FUNCTION filegc.file_name(path text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT reverse(split_part(reverse(path), '/', 1))
$$;
COMMENT ON FUNCTION filegc.file_name(text) IS
    'Internal: the last segment of a path (its file name)';

-- Whether no segment of a path is over 255 bytes (a file name's limit).
CREATE FUNCTION filegc.segments_fit(path text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT NOT EXISTS (SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(path, '/')) AS s
                        WHERE pg_catalog.octet_length(s) > 255)
$$;
COMMENT ON FUNCTION filegc.segments_fit(text) IS
    'Internal: whether no segment of a path is over 255 bytes';

-- Whether a path is short enough to be a reference: no segment over 255
-- bytes and at most 2,048 bytes in all (an index entry's), the limits of
-- path_rules::validate_relative. The tombstones' CHECK runs it at every
-- UPDATE, so it is written to be inlined there: no subquery and no STRICT
-- (a SQL function with either is executed as a call, 12 us a row), and a
-- path of at most 255 bytes, which cannot hold a longer segment, is not
-- split at all.
CREATE FUNCTION filegc.path_fits(path text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.octet_length(path) <= 255
        OR (pg_catalog.octet_length(path) <= 2048 AND filegc.segments_fit(path))
$$;
COMMENT ON FUNCTION filegc.path_fits(text) IS
    'Internal: whether a path is short enough to be a reference (segments of at most 255 bytes, 2048 in all)';

-- The file name a stored value may mean, whatever is wrong with it: what
-- its path would be with the query, fragment, URL parts and percent-encoding
-- handled as for a reference, or else its raw text up to a query or
-- fragment; NULL when that cannot be a file name. A file with this name is
-- kept by every deletion route (protection by name): a wrong prefix or a
-- mistyped URL must not turn the files rows mean into deletable ones.
CREATE FUNCTION filegc.protected_name(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN n IN ('', '.', '..') OR octet_length(n) > 255 THEN NULL ELSE n END
      FROM (SELECT filegc.file_name(coalesce(
                       filegc.ref_path(value, '{/}'),
                       replace(split_part(split_part(value, '?', 1), '#', 1), '\', '/'))) AS n) AS named
$$;
COMMENT ON FUNCTION filegc.protected_name(text) IS
    'The file name a stored value that is no reference may mean; files with that name are never deleted';

-- The user id in a name that follows `user_{id}_{unix_ts}[_2].{ext}`.
CREATE FUNCTION filegc.user_id_of(path text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (regexp_match(path, '(?:^|/)user_(\d{1,18})_\d+(?:_2)?\.[^./]+$'))[1]::bigint
$$;
COMMENT ON FUNCTION filegc.user_id_of(text) IS 'The user id of a file named user_{id}_{unix_ts}[_2].{ext}, or NULL';

-- A stored value as a warning shows it: a value can be megabytes long.
CREATE FUNCTION filegc.shown_value(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN length(value) <= 200 THEN value
                ELSE left(value, 200) || format('... (%s characters)', length(value)) END
$$;
COMMENT ON FUNCTION filegc.shown_value(text) IS 'Internal: a stored value as a warning shows it, at most 200 characters';

-- The engine's path rules (Rust in the extension, sql/portable/ref_path.sql
-- in the portable install) are described here, the same for both.
COMMENT ON FUNCTION filegc.ref_path(text, text[]) IS
    'The path a stored value references, relative to the volume root; NULL when it references nothing or cannot be a reference';
COMMENT ON FUNCTION filegc.ref_paths(text[], text[]) IS
    'The paths an array of stored values references (NULLs and invalid values left out, duplicates kept once)';
COMMENT ON FUNCTION filegc.ref_path_problem(text, text[]) IS
    'Why a stored value cannot be a reference; NULL when it is one or is empty';
