-- Needs a superuser: keeps filegc.tracked in step with DROP TABLE and
-- ALTER TABLE ... DROP COLUMN.
CREATE EVENT TRIGGER filegc_forget_dropped ON sql_drop
    EXECUTE FUNCTION filegc.forget_dropped();
