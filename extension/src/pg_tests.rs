//! Tests that run inside PostgreSQL, each in a transaction that is rolled back.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use filegc_path_rules::vectors;
    use pgrx::prelude::*;

    const PREFIX: &str = "/app/facial_evaluations/";

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn one<T: FromDatum + IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The error message `sql` raises, or None when it succeeds; runs in a
    /// subtransaction so that the test's transaction goes on.
    fn error_of(sql: &str) -> Option<String> {
        run("CREATE OR REPLACE FUNCTION pg_temp.error_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE statement; RETURN NULL; EXCEPTION WHEN others THEN RETURN SQLERRM; END $$");
        Spi::get_one_with_args::<String>("SELECT pg_temp.error_of($1)", &[sql.into()]).unwrap()
    }

    fn count(sql: &str) -> i64 {
        one::<i64>(sql).expect("a count is never NULL")
    }

    /// The application's two tables, both image columns of each tracked.
    fn app_schema() {
        run("CREATE TABLE facial_evaluations (
                 id bigserial PRIMARY KEY, user_id bigint NOT NULL,
                 image_path text, secondary_image_path text,
                 created_at timestamptz NOT NULL DEFAULT now())");
        run("CREATE TABLE generations (
                 id bigserial PRIMARY KEY, user_id bigint NOT NULL,
                 input_image_path text, output_image_path varchar(500),
                 created_at timestamptz NOT NULL DEFAULT now())");
        for (table, column) in [
            ("facial_evaluations", "image_path"),
            ("facial_evaluations", "secondary_image_path"),
            ("generations", "input_image_path"),
            ("generations", "output_image_path"),
        ] {
            run(&format!(
                "SELECT filegc.track('{table}', '{column}', '{{{PREFIX}}}')"
            ));
        }
    }

    /// What the sweeper does before it claims: the triggers' notes become
    /// deletions, cancellations and restore requests.
    fn notes_processed() {
        run("SELECT filegc.process_notes()");
    }

    /// The open deletions of `path`, once the notes are processed.
    fn open_tombstones(path: &str) -> i64 {
        notes_processed();
        count(&format!(
            "SELECT count(*) FROM filegc.tombstones WHERE path = '{path}' AND state IN ('pending', 'claimed')"
        ))
    }

    fn all_open_tombstones() -> i64 {
        notes_processed();
        count("SELECT count(*) FROM filegc.tombstones WHERE state IN ('pending', 'claimed')")
    }

    #[pg_test]
    fn ref_path_agrees_with_the_shared_vectors() {
        for v in vectors::parse(vectors::VECTORS_TSV) {
            if v.value.contains('\0') {
                continue; // PostgreSQL text cannot hold NUL: the column can never store one.
            }
            let path = Spi::get_one_with_args::<String>(
                "SELECT filegc.ref_path($1, $2)",
                &[v.value.clone().into(), v.prefixes.clone().into()],
            )
            .unwrap();
            let problem = Spi::get_one_with_args::<String>(
                "SELECT filegc.ref_path_problem($1, $2)",
                &[v.value.clone().into(), v.prefixes.clone().into()],
            )
            .unwrap();
            assert_eq!(
                path, v.expected_path,
                "ref_path({:?}, {:?})",
                v.value, v.prefixes
            );
            assert_eq!(
                problem.is_some(),
                v.expected_invalid.is_some(),
                "ref_path_problem({:?})",
                v.value
            );
        }
    }

    #[pg_test]
    fn ref_paths_normalizes_each_element_once() {
        let paths = one::<Vec<String>>(
            "SELECT filegc.ref_paths(ARRAY['/app/x/b.jpg', NULL, 'a.jpg', '../bad', 'a.jpg'], '{/app/x/}')",
        );
        assert_eq!(paths, Some(vec!["a.jpg".to_owned(), "b.jpg".to_owned()]));
    }

    #[pg_test]
    fn track_creates_an_index_and_counts_existing_references() {
        run("CREATE TABLE photos (id int, image_path text)");
        run("INSERT INTO photos VALUES (1, 'a.jpg'), (2, '/app/facial_evaluations/b.jpg'), (3, NULL), (4, '')");
        let references =
            one::<i64>("SELECT filegc.track('photos', 'image_path', '{/app/facial_evaluations/}')");
        assert_eq!(references, Some(2));
        let index = one::<String>("SELECT index_name::text FROM filegc.tracked_columns WHERE table_name = 'photos'::regclass")
            .expect("tracked_columns lists the column");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM pg_indexes WHERE indexname = '{index}'"
            )),
            1
        );
        run("SET LOCAL enable_seqscan = off");
        let plan = Spi::explain(&format!(
            "SELECT FROM photos WHERE {} = 'a.jpg'",
            one::<String>("SELECT filegc.reference_expression('image_path', false, '{/app/facial_evaluations/}')").unwrap()
        ))
        .unwrap();
        assert!(
            plan.0.to_string().contains(&index),
            "the probe expression uses the index: {}",
            plan.0
        );
        assert_eq!(
            one::<i64>("SELECT filegc.track('photos', 'image_path', '{/app/facial_evaluations/}')"),
            Some(2)
        );
        assert_eq!(
            count("SELECT count(*) FROM filegc.tracked_columns"),
            1,
            "tracking twice is harmless"
        );
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'photos'::regclass AND tgname LIKE 'filegc%'"),
            3,
            "one for INSERT and DELETE, one for UPDATE, one for TRUNCATE"
        );
    }

    #[pg_test]
    fn track_reuses_an_index_built_beforehand() {
        run("CREATE TABLE photos (id int, image_path text)");
        run("CREATE INDEX photos_refs ON photos (filegc.ref_path(image_path, '{/app/facial_evaluations/}'))");
        run("SELECT filegc.track('photos', 'image_path', '{/app/facial_evaluations/}')");
        assert_eq!(
            one::<String>("SELECT index_name::text FROM filegc.tracked_columns"),
            Some("photos_refs".to_owned())
        );
        assert_eq!(
            count("SELECT count(*) FROM pg_indexes WHERE tablename = 'photos'"),
            1
        );
        run("SELECT filegc.untrack('photos', 'image_path')");
        assert_eq!(
            count("SELECT count(*) FROM pg_indexes WHERE indexname = 'photos_refs'"),
            1,
            "untrack leaves an index the operator built"
        );
    }

    #[pg_test]
    fn track_refuses_columns_that_cannot_hold_references() {
        run("CREATE TABLE photos (id int, size integer)");
        let error = error_of("SELECT filegc.track('photos', 'size')")
            .expect("track refuses an integer column");
        assert!(error.contains("is of type integer"), "{error}");
        let error = error_of("SELECT filegc.track('photos', 'nope')")
            .expect("track refuses a missing column");
        assert!(error.contains("has no column"), "{error}");
    }

    #[pg_test]
    fn deleting_the_last_reference_schedules_a_tombstone() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (7, '/app/facial_evaluations/user_7_1700000000.jpg')");
        assert_eq!(all_open_tombstones(), 0);
        run("DELETE FROM facial_evaluations");
        assert_eq!(open_tombstones("user_7_1700000000.jpg"), 1);
        let (reason, delay_ok) = Spi::get_two::<String, bool>(
            "SELECT reason, due_at = created_at + interval '10 minutes' FROM filegc.tombstones",
        )
        .unwrap();
        assert_eq!(reason.as_deref(), Some("unreferenced"));
        assert_eq!(
            delay_ok,
            Some(true),
            "due after the unreferenced_delay default"
        );
    }

    #[pg_test]
    fn the_delay_comes_from_the_settings() {
        app_schema();
        run("UPDATE filegc.settings SET value = '0' WHERE name = 'unreferenced_delay'");
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (7, 'a.jpg')");
        run("DELETE FROM facial_evaluations");
        notes_processed();
        assert_eq!(
            one::<bool>("SELECT due_at = created_at FROM filegc.tombstones"),
            Some(true)
        );
    }

    #[pg_test]
    fn a_path_another_row_references_is_not_scheduled() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'shared.jpg'), (2, 'shared.jpg')");
        run("DELETE FROM facial_evaluations WHERE user_id = 1");
        assert_eq!(all_open_tombstones(), 0);
        run("DELETE FROM facial_evaluations WHERE user_id = 2");
        assert_eq!(open_tombstones("shared.jpg"), 1);
    }

    #[pg_test]
    fn a_path_another_table_references_is_not_scheduled() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'user_1_5.jpg')");
        run("INSERT INTO generations (user_id, output_image_path) VALUES (1, 'https://cdn.example.com/app/facial_evaluations/user_1_5.jpg')");
        run("DELETE FROM facial_evaluations");
        assert_eq!(
            all_open_tombstones(),
            0,
            "generations.output_image_path (varchar, URL form) still references it"
        );
        run("DELETE FROM generations");
        assert_eq!(open_tombstones("user_1_5.jpg"), 1);
    }

    #[pg_test]
    fn a_new_reference_cancels_the_pending_tombstone() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'user_1_5.jpg')");
        run("DELETE FROM facial_evaluations");
        assert_eq!(open_tombstones("user_1_5.jpg"), 1);
        run("INSERT INTO generations (user_id, input_image_path) VALUES (1, '/app/facial_evaluations/user_1_5.jpg')");
        assert_eq!(open_tombstones("user_1_5.jpg"), 0);
        assert_eq!(
            one::<String>("SELECT state FROM filegc.tombstones WHERE path = 'user_1_5.jpg'"),
            Some("cancelled".to_owned())
        );
    }

    #[pg_test]
    fn a_new_reference_asks_for_a_trashed_file_back() {
        app_schema();
        run("INSERT INTO filegc.tombstones (path, reason, state, due_at, outcome, finished_at, bytes_freed)
             VALUES ('user_1_5.jpg', 'unreferenced', 'done', now(), 'trashed', now(), 100)");
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'user_1_5.jpg')");
        notes_processed();
        assert_eq!(
            one::<bool>("SELECT restore_requested_at IS NOT NULL FROM filegc.tombstones WHERE path = 'user_1_5.jpg'"),
            Some(true)
        );
    }

    #[pg_test]
    fn moving_a_path_schedules_the_old_and_cancels_the_new() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'old.jpg'), (2, 'new.jpg')");
        run("DELETE FROM facial_evaluations WHERE user_id = 2");
        assert_eq!(open_tombstones("new.jpg"), 1);
        run("UPDATE facial_evaluations SET image_path = 'new.jpg' WHERE user_id = 1");
        assert_eq!(open_tombstones("old.jpg"), 1);
        assert_eq!(open_tombstones("new.jpg"), 0);
    }

    #[pg_test]
    fn an_update_that_keeps_the_paths_changes_nothing() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg')");
        run("DELETE FROM facial_evaluations");
        run("INSERT INTO filegc.tombstones (path, reason, due_at) VALUES ('b.jpg', 'manual', now())");
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'c.jpg')");
        notes_processed();
        let before = count("SELECT count(*) FROM filegc.tombstones");
        run("UPDATE facial_evaluations SET user_id = 2");
        run("UPDATE facial_evaluations SET image_path = 'c.jpg'");
        run("UPDATE facial_evaluations SET image_path = './c.jpg'");
        run("UPDATE facial_evaluations SET image_path = '/app/facial_evaluations/c.jpg'");
        assert_eq!(
            count("SELECT count(*) FROM filegc.notes"),
            0,
            "nothing was noted"
        );
        assert_eq!(count("SELECT count(*) FROM filegc.tombstones"), before);
        assert_eq!(open_tombstones("c.jpg"), 0);
    }

    #[pg_test]
    fn swapping_primary_and_secondary_images_changes_nothing() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path) VALUES (1, 'a.jpg', 'a_2.jpg')");
        run("UPDATE facial_evaluations SET image_path = secondary_image_path, secondary_image_path = image_path");
        assert_eq!(all_open_tombstones(), 0);
        run("UPDATE facial_evaluations SET secondary_image_path = NULL");
        assert_eq!(
            open_tombstones("a.jpg"),
            1,
            "the old image path, now in no column"
        );
        run("DELETE FROM facial_evaluations");
        assert_eq!(open_tombstones("a_2.jpg"), 1);
        assert_eq!(all_open_tombstones(), 2);
    }

    #[pg_test]
    fn null_and_empty_values_are_not_references() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path) VALUES (1, NULL, '')");
        run("UPDATE facial_evaluations SET image_path = ''");
        run("DELETE FROM facial_evaluations");
        assert_eq!(count("SELECT count(*) FROM filegc.tombstones"), 0);
        assert_eq!(count("SELECT count(*) FROM filegc.invalid_refs"), 0);
    }

    #[pg_test]
    fn invalid_values_are_recorded_and_the_write_succeeds() {
        app_schema();
        run(
            "INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path)
             VALUES (1, '/etc/passwd', '../../etc/shadow')",
        );
        assert_eq!(count("SELECT count(*) FROM facial_evaluations"), 1);
        assert_eq!(count("SELECT count(*) FROM filegc.invalid_refs"), 2);
        assert_eq!(
            one::<String>(
                "SELECT column_name::text FROM filegc.invalid_refs WHERE value = '/etc/passwd'"
            ),
            Some("image_path".to_owned())
        );
        run("DELETE FROM facial_evaluations");
        assert_eq!(
            all_open_tombstones(),
            0,
            "an invalid value never was a reference"
        );
    }

    #[pg_test]
    fn track_records_invalid_values_already_stored() {
        run("CREATE TABLE photos (id int, image_path text)");
        run("INSERT INTO photos VALUES (1, '/srv/other/user_1_1.jpg'), (2, 'ok.jpg')");
        assert_eq!(
            one::<i64>("SELECT filegc.track('photos', 'image_path', '{/app/facial_evaluations/}')"),
            Some(1)
        );
        assert_eq!(
            one::<String>("SELECT value FROM filegc.invalid_refs"),
            Some("/srv/other/user_1_1.jpg".to_owned())
        );
    }

    #[pg_test]
    fn array_columns_track_each_element() {
        run("CREATE TABLE albums (id int, images text[])");
        run("SELECT filegc.track('albums', 'images', '{/app/facial_evaluations/}')");
        assert_eq!(
            one::<String>("SELECT am.amname::text FROM filegc.tracked_columns t JOIN pg_class c ON c.relname = t.index_name JOIN pg_am am ON am.oid = c.relam"),
            Some("gin".to_owned())
        );
        run("INSERT INTO albums VALUES (1, ARRAY['a.jpg', '/app/facial_evaluations/b.jpg'])");
        assert_eq!(
            one::<bool>("SELECT filegc.is_referenced('b.jpg')"),
            Some(true)
        );
        run("UPDATE albums SET images = ARRAY['a.jpg']");
        assert_eq!(open_tombstones("b.jpg"), 1);
        assert_eq!(open_tombstones("a.jpg"), 0);
    }

    #[pg_test]
    fn truncate_schedules_the_paths_only_that_table_referenced() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path) VALUES (1, 'only.jpg', 'shared.jpg')");
        run("INSERT INTO generations (user_id, input_image_path) VALUES (1, 'shared.jpg')");
        run("TRUNCATE facial_evaluations");
        assert_eq!(open_tombstones("only.jpg"), 1);
        assert_eq!(open_tombstones("shared.jpg"), 0);
    }

    #[pg_test]
    fn truncate_of_many_rows_escalates_to_one_lock() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) SELECT i, 'user_' || i || '_1.jpg' FROM generate_series(1, 500) i");
        run("TRUNCATE facial_evaluations");
        assert_eq!(all_open_tombstones(), 500);
        let path_locks = count(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
             AND classid = filegc.path_lock_class()::oid",
        );
        assert!(
            path_locks <= 64,
            "{path_locks} path locks: the lock table would overflow on a mass delete"
        );
        assert_eq!(
            count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = filegc.escalation_lock_class()::oid AND mode = 'ShareLock'"),
            1
        );
    }

    fn held_lock(class: &str, path: &str, mode: &str) -> i64 {
        count(&format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
             AND classid = filegc.{class}()::oid AND objid = filegc.path_lock_key('{path}')::oid AND mode = '{mode}'"
        ))
    }

    #[pg_test]
    fn a_path_entering_a_row_is_held_shared_against_the_sweeper() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'entering.jpg')");
        assert_eq!(held_lock("path_lock_class", "entering.jpg", "ShareLock"), 1);
    }

    /// The triggers compute the lock keys in Rust; the final check takes
    /// its locks with filegc.path_lock_key in SQL. They must agree on any path.
    #[pg_test]
    fn the_triggers_lock_every_path_under_the_key_the_final_check_uses() {
        app_schema();
        // As long as a path may be: 2,000 bytes, in names of at most 255.
        let long = format!("{}x.jpg", "abcdefghi/".repeat(199));
        for path in [
            "plain.jpg",
            "été/ünïcode_画像.webp",
            "a b/c%20d.png",
            long.as_str(),
        ] {
            run(&format!(
                "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, '{path}')"
            ));
            assert_eq!(
                held_lock("path_lock_class", path, "ShareLock"),
                1,
                "no SHARED lock under filegc.path_lock_key of {path:?}"
            );
        }
    }

    #[pg_test]
    fn a_path_leaving_a_row_is_noted_even_while_another_row_has_it() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'leaving.jpg'), (2, 'leaving.jpg')");
        run("DELETE FROM facial_evaluations WHERE user_id = 1");
        assert_eq!(
            count("SELECT count(*) FROM filegc.notes WHERE kind = 'r' AND path = 'leaving.jpg'"),
            1,
            "the trigger does not judge; the sweeper asks after the commit"
        );
        assert_eq!(open_tombstones("leaving.jpg"), 0, "row 2 still has it");
    }

    #[pg_test]
    fn dropping_a_tracked_table_forgets_its_columns() {
        app_schema();
        run("DROP TABLE generations");
        assert_eq!(
            count("SELECT count(*) FROM filegc.tracked_columns"),
            2,
            "only facial_evaluations' two columns are left"
        );
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg')");
        run("DELETE FROM facial_evaluations");
        assert_eq!(
            open_tombstones("a.jpg"),
            1,
            "the probe no longer looks at the dropped table"
        );
    }

    #[pg_test]
    fn untrack_removes_triggers_and_index_and_schedules_lost_references() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path) VALUES (1, 'a.jpg', 'a_2.jpg')");
        let index = one::<String>(
            "SELECT index_name::text FROM filegc.tracked_columns WHERE column_name = 'secondary_image_path'",
        )
        .unwrap();
        assert_eq!(
            one::<i32>("SELECT filegc.untrack('facial_evaluations', 'secondary_image_path', force => true)"),
            Some(1)
        );
        assert_eq!(open_tombstones("a_2.jpg"), 1);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM pg_indexes WHERE indexname = '{index}'"
            )),
            0
        );
        run("UPDATE facial_evaluations SET secondary_image_path = 'b_2.jpg'");
        assert_eq!(open_tombstones("b_2.jpg"), 0);
        run("SELECT filegc.untrack('facial_evaluations', 'image_path', force => true)");
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'facial_evaluations'::regclass AND tgname LIKE 'filegc%'"),
            0
        );
        run("DELETE FROM facial_evaluations");
        assert_eq!(
            all_open_tombstones(),
            2,
            "a.jpg by untrack, a_2.jpg before; nothing from the untracked delete"
        );
    }

    #[pg_test]
    fn a_rolled_back_delete_leaves_no_tombstone() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg')");
        run("DO $$ BEGIN
                 DELETE FROM facial_evaluations;
                 RAISE EXCEPTION 'roll back';
             EXCEPTION WHEN raise_exception THEN NULL;
             END $$");
        assert_eq!(count("SELECT count(*) FROM facial_evaluations"), 1);
        assert_eq!(count("SELECT count(*) FROM filegc.tombstones"), 0);
    }

    #[pg_test]
    fn the_application_role_needs_no_grant_on_filegc() {
        app_schema();
        run("CREATE ROLE filegc_test_app");
        run("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON facial_evaluations TO filegc_test_app");
        run("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO filegc_test_app");
        run("SET LOCAL ROLE filegc_test_app");
        run("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg'), (2, '/etc/passwd')");
        run("DELETE FROM facial_evaluations WHERE user_id = 1");
        run("TRUNCATE facial_evaluations");
        let denied = error_of("SELECT count(*) FROM filegc.tombstones");
        run("RESET ROLE");
        assert!(
            denied.is_some_and(|e| e.contains("permission denied")),
            "the application role cannot read filegc's tables"
        );
        assert_eq!(open_tombstones("a.jpg"), 1);
        assert_eq!(count("SELECT count(*) FROM filegc.invalid_refs"), 1);
    }

    #[pg_test]
    fn is_referenced_and_references_read_the_rows() {
        app_schema();
        run("INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path) VALUES (1, 'a.jpg', 'a_2.jpg'), (2, 'a.jpg', NULL)");
        run("INSERT INTO generations (user_id, output_image_path) VALUES (1, 'a.jpg')");
        assert_eq!(
            one::<bool>("SELECT filegc.is_referenced('a.jpg')"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT filegc.is_referenced('nobody.jpg')"),
            Some(false)
        );
        assert_eq!(
            one::<i64>("SELECT refcount FROM filegc.references WHERE path = 'a.jpg'"),
            Some(3)
        );
        assert_eq!(
            one::<Vec<String>>("SELECT sources FROM filegc.references WHERE path = 'a.jpg'"),
            Some(vec![
                "public.facial_evaluations.image_path".to_owned(),
                "public.generations.output_image_path".to_owned()
            ])
        );
        assert_eq!(count("SELECT count(*) FROM filegc.references"), 2);
    }

    #[pg_test]
    fn settings_reject_invalid_values_and_reset_on_delete() {
        for (name, bad) in [
            ("unreferenced_delay", "soon"),
            ("unreferenced_delay", "-1 hour"),
            ("max_delete_fraction", "1.5"),
            ("alert_warning_pct", "120"),
            ("alert_warning_pct", "99"),
            ("max_attempts", "0"),
        ] {
            let error = error_of(&format!(
                "UPDATE filegc.settings SET value = '{bad}' WHERE name = '{name}'"
            ));
            assert!(
                error.is_some_and(|e| e.contains(name)),
                "{name} = {bad} must be refused, naming the setting"
            );
        }
        run("UPDATE filegc.settings SET value = '2 hours' WHERE name = 'orphan_min_age'");
        assert_eq!(
            one::<String>("SELECT filegc.setting('orphan_min_age')"),
            Some("2 hours".to_owned())
        );
        run("DELETE FROM filegc.settings WHERE name = 'orphan_min_age'");
        assert_eq!(
            one::<String>("SELECT filegc.setting('orphan_min_age')"),
            Some("1 hour".to_owned())
        );
        assert_eq!(count("SELECT count(*) FROM filegc.settings"), 17);
    }
}
