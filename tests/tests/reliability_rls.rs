//! The promise, scenario 10 (f): every probe sees every row. A portable
//! install owned by a role that row-level security applies to would see only
//! the rows its policies show; filegc refuses to work blind instead, and
//! says what to grant.

use filegc_tests::reliability::{error_of, final_verdict};
use filegc_tests::sweeper::filegc_at;
use filegc_tests::{cluster, TestDb};
use postgres::{Client, NoTls};

/// A database whose table `photos` belongs to `owner` (a login role that is
/// no superuser), with a tenant policy, and filegc's portable install made
/// by that owner.
fn tenant_database(owner: &str) -> (TestDb, Client) {
    let db = cluster().create_plain_database();
    let mut admin = db.connect();
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {owner} LOGIN CREATEROLE;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             DO $$ BEGIN CREATE ROLE filegc_sweeper NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             -- From PostgreSQL 16 on, a role that is no superuser may comment
             -- on or grant a role it did not create only with ADMIN on it.
             GRANT filegc_sweeper TO {owner} WITH ADMIN OPTION;
             GRANT CREATE ON DATABASE {} TO {owner};
             GRANT CREATE ON SCHEMA public TO {owner};",
            db.name()
        ))
        .unwrap();
    let mut as_owner = Client::connect(&db.url_as(owner), NoTls).unwrap();
    as_owner
        .batch_execute(
            "CREATE TABLE photos (tenant int NOT NULL, img text);
             CREATE POLICY own_tenant ON photos USING (tenant = current_setting('app.tenant', true)::int);",
        )
        .unwrap();
    filegc_at(&db.url_as(owner), &["install-sql", "--apply"]);
    (db, as_owner)
}

#[test]
fn track_refuses_a_table_whose_policies_would_hide_rows_from_filegc() {
    let (_db, mut owner) = tenant_database("rls_owner_refused");
    owner
        .batch_execute("ALTER TABLE photos ENABLE ROW LEVEL SECURITY; ALTER TABLE photos FORCE ROW LEVEL SECURITY;")
        .unwrap();
    let message = error_of(&mut owner, "SELECT filegc.track('photos', 'img')");
    assert!(
        message.contains("row-level security") && message.contains("BYPASSRLS"),
        "the refusal says what to grant: {message}"
    );
}

#[test]
fn policies_added_after_track_stop_the_final_check_and_the_reports() {
    let (db, mut owner) = tenant_database("rls_owner_later");
    owner
        .batch_execute(
            "SELECT filegc.track('photos', 'img');
             INSERT INTO photos VALUES (7, 'shared.jpg'), (8, 'shared.jpg');
             ALTER TABLE photos ENABLE ROW LEVEL SECURITY; ALTER TABLE photos FORCE ROW LEVEL SECURITY;
             SET app.tenant = '8';
             DELETE FROM photos WHERE tenant = 8;",
        )
        .unwrap_or_else(|e| panic!("the application's writes failed: {e}"));
    let mut admin = db.connect();
    let verdict = final_verdict(&mut admin, "shared.jpg");
    match &verdict {
        Err(message) => assert!(
            message.contains("row-level security") && message.contains("photos"),
            "{message}"
        ),
        Ok(verdict) => assert_eq!(
            verdict, "referenced",
            "tenant 7 still references shared.jpg"
        ),
    }
    let report = error_of(
        &mut admin,
        "SELECT * FROM filegc.cleanup_orphans(dry_run => false, force => true)",
    );
    assert!(report.contains("row-level security"), "{report}");
}

#[test]
fn an_owner_that_bypasses_row_level_security_sees_every_row() {
    let (db, mut owner) = tenant_database("rls_owner_bypass");
    db.connect()
        .batch_execute("ALTER ROLE rls_owner_bypass BYPASSRLS")
        .unwrap();
    owner
        .batch_execute(
            "ALTER TABLE photos ENABLE ROW LEVEL SECURITY; ALTER TABLE photos FORCE ROW LEVEL SECURITY;
             SELECT filegc.track('photos', 'img');
             INSERT INTO photos VALUES (7, 'shared.jpg'), (8, 'shared.jpg');
             SET app.tenant = '8';
             DELETE FROM photos WHERE tenant = 8;",
        )
        .unwrap();
    let mut admin = db.connect();
    assert_eq!(
        final_verdict(&mut admin, "shared.jpg").as_deref(),
        Ok("referenced")
    );
}
