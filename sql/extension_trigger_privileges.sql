-- Extension only: the Rust trigger functions run as the extension's owner
-- with a fixed search_path, so that the application's role needs no grant on
-- filegc's tables and cannot redirect what the triggers call.
ALTER FUNCTION filegc.references_trigger() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION filegc.truncate_trigger() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION filegc.references_trigger(), filegc.truncate_trigger() FROM PUBLIC;
