-- The extension's row and TRUNCATE triggers are Rust (extension/src/triggers.rs);
-- pgrx declares them. They run as filegc's owner with a fixed search_path,
-- so that the application's role needs no grant on filegc's tables and
-- cannot redirect what the triggers call (grants.sql keeps PUBLIC from
-- calling them at all).
ALTER FUNCTION filegc.references_trigger() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION filegc.truncate_trigger() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
