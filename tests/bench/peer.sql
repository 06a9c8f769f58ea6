-- A hand-written peer of filegc's triggers, for the trigger benchmark only:
-- what a developer might write first to learn when an image loses its last
-- row. A reference count per path and a table of files to delete, kept up by
-- PL/pgSQL row triggers on the application's two tables.
--
-- It does less than filegc: no lock protocol with a sweeper, no invalid
-- references, no TRUNCATE or DROP, no NOTIFY, and its counts drift the
-- moment a write bypasses the triggers. It is the cost floor a trigger-based
-- design starts from.

CREATE TABLE peer_refcounts (
    path text PRIMARY KEY,
    refcount integer NOT NULL
);

CREATE TABLE peer_tombstones (
    id bigserial PRIMARY KEY,
    path text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    due_at timestamptz NOT NULL DEFAULT now() + interval '10 minutes'
);
CREATE INDEX peer_tombstones_path ON peer_tombstones (path);

-- A stored value as a path relative to the volume root.
CREATE FUNCTION peer_path(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN starts_with(value, '/app/facial_evaluations/')
                THEN substr(value, length('/app/facial_evaluations/') + 1)
                ELSE value END
$$;

-- Counts the paths that entered a row up and those that left it down; a
-- path whose count reaches zero is scheduled, one that comes back is not.
CREATE FUNCTION peer_count(added text[], removed text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p text;
    remaining integer;
BEGIN
    FOREACH p IN ARRAY array_remove(added, NULL) LOOP
        INSERT INTO peer_refcounts AS r (path, refcount) VALUES (p, 1)
            ON CONFLICT (path) DO UPDATE SET refcount = r.refcount + 1;
        DELETE FROM peer_tombstones WHERE path = p;
    END LOOP;
    FOREACH p IN ARRAY array_remove(removed, NULL) LOOP
        UPDATE peer_refcounts SET refcount = refcount - 1 WHERE path = p
        RETURNING refcount INTO remaining;
        IF remaining = 0 THEN
            DELETE FROM peer_refcounts WHERE path = p;
            INSERT INTO peer_tombstones (path) VALUES (p);
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION peer_facial_evaluations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM peer_count(ARRAY[peer_path(NEW.image_path), peer_path(NEW.secondary_image_path)], '{}');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM peer_count('{}', ARRAY[peer_path(OLD.image_path), peer_path(OLD.secondary_image_path)]);
    ELSE
        PERFORM peer_count(ARRAY[peer_path(NEW.image_path), peer_path(NEW.secondary_image_path)],
                           ARRAY[peer_path(OLD.image_path), peer_path(OLD.secondary_image_path)]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_references AFTER INSERT OR DELETE OR UPDATE OF image_path, secondary_image_path
    ON facial_evaluations FOR EACH ROW EXECUTE FUNCTION peer_facial_evaluations();

CREATE FUNCTION peer_generations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM peer_count(ARRAY[peer_path(NEW.input_image_path), peer_path(NEW.output_image_path)], '{}');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM peer_count('{}', ARRAY[peer_path(OLD.input_image_path), peer_path(OLD.output_image_path)]);
    ELSE
        PERFORM peer_count(ARRAY[peer_path(NEW.input_image_path), peer_path(NEW.output_image_path)],
                           ARRAY[peer_path(OLD.input_image_path), peer_path(OLD.output_image_path)]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER peer_references AFTER INSERT OR DELETE OR UPDATE OF input_image_path, output_image_path
    ON generations FOR EACH ROW EXECUTE FUNCTION peer_generations();
