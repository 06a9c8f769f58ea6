//! Upgrades: a database that installed an older release and ran
//! `ALTER EXTENSION filegc UPDATE` (or, for the portable install,
//! `filegc install-sql --apply`) must end up with exactly the schema of a
//! new install, with its data intact; released scripts never change.

use filegc_sweeper::portable;
use filegc_tests::cluster;
use filegc_tests::sweeper::filegc_on;
use postgres::Client;
use std::collections::BTreeMap;
use std::path::Path;

/// The first release; every later version is reached from it by upgrade scripts.
const FIRST_RELEASE: &str = "0.1.0";

/// Everything in schema filegc that a user or the sweeper can observe, as
/// (kind and name, definition) pairs.
fn schema_signature(client: &mut Client) -> BTreeMap<String, String> {
    let queries = [
        // Tables, views and their columns.
        "SELECT 'column ' || c.relname || '.' || a.attname,
                format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
                || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
          WHERE n.nspname = 'filegc'",
        "SELECT 'relation ' || c.relname, c.relkind::text || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
                || ' ' || coalesce(c.relacl::text, '') || ' ' || c.relpersistence::text
                || ' ' || coalesce(c.reloptions::text, '')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'filegc'",
        "SELECT 'view ' || c.relname, pg_get_viewdef(c.oid)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'filegc' AND c.relkind = 'v'",
        "SELECT 'index ' || i.relname, pg_get_indexdef(i.oid)
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
          WHERE n.nspname = 'filegc'",
        "SELECT 'constraint ' || conrelid::regclass || ' ' || conname, pg_get_constraintdef(oid)
           FROM pg_constraint WHERE connamespace = 'filegc'::regnamespace",
        "SELECT 'function ' || p.oid::regprocedure,
                pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, '')
                || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
           FROM pg_proc p WHERE p.pronamespace = 'filegc'::regnamespace",
        "SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname, pg_get_triggerdef(oid)
           FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'filegc'::regnamespace)",
        "SELECT 'event trigger ' || evtname, evtevent || ' ' || evtfoid::regproc::text FROM pg_event_trigger",
        "SELECT 'setting ' || name, default_value || ' ' || kind || ' ' || description FROM filegc.setting_defaults",
        "SELECT 'dumped ' || unnest(extconfig)::regclass::text, '' FROM pg_extension WHERE extname = 'filegc'",
    ];
    let mut signature = BTreeMap::new();
    for query in queries {
        for row in client
            .query(query, &[])
            .unwrap_or_else(|e| panic!("{query}: {:?}", e.as_db_error()))
        {
            signature.insert(row.get(0), row.get(1));
        }
    }
    signature
}

#[test]
fn updating_from_the_first_release_gives_the_schema_of_a_new_install() {
    // The extension's upgrade path, whichever engine the rest of the suite uses.
    let fresh_db = cluster().create_plain_database();
    fresh_db
        .connect()
        .batch_execute("CREATE EXTENSION filegc")
        .unwrap();
    let fresh = schema_signature(&mut fresh_db.connect());

    let old_db = cluster().create_plain_database();
    let mut client = old_db.connect();
    client
        .batch_execute(&format!(
            "CREATE EXTENSION filegc VERSION '{FIRST_RELEASE}'"
        ))
        .unwrap_or_else(|e| {
            panic!("installing {FIRST_RELEASE} (is sql/archive installed? run make install): {e}")
        });
    client.batch_execute(OPERATOR_DATA).unwrap();
    client
        .batch_execute("ALTER EXTENSION filegc UPDATE")
        .unwrap();
    let version: String = client
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'filegc'",
            &[],
        )
        .unwrap()
        .get(0);
    let fresh_version: String = fresh_db
        .connect()
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'filegc'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, fresh_version);

    let upgraded = schema_signature(&mut client);
    let differences = differences(&fresh, &upgraded);
    assert!(
        differences.is_empty(),
        "upgraded schema differs:\n{}",
        differences.join("\n")
    );
    assert_operator_data_kept(&mut client);
}

/// The differences between two schema signatures, one line per object.
fn differences(
    fresh: &BTreeMap<String, String>,
    upgraded: &BTreeMap<String, String>,
) -> Vec<String> {
    fresh
        .keys()
        .chain(upgraded.keys())
        .filter(|key| fresh.get(*key) != upgraded.get(*key))
        .map(|key| {
            format!(
                "{key}\n  new install: {:?}\n  upgraded:    {:?}",
                fresh.get(key),
                upgraded.get(key)
            )
        })
        .collect()
}

/// Some data of every kind an upgrade must keep: a tombstone, an invalid
/// reference, a changed setting and a tracked column.
const OPERATOR_DATA: &str = "
    CREATE TABLE photos (id int, image_path text);
    SELECT filegc.track('photos', 'image_path', '{/app/facial_evaluations/}');
    INSERT INTO photos VALUES (1, 'a.jpg'), (2, 'b.jpg'), (3, '/etc/passwd');
    DELETE FROM photos WHERE id = 1;
    UPDATE filegc.settings SET value = '2 hours' WHERE name = 'orphan_min_age';";

/// Checks that the data of OPERATOR_DATA survived and the triggers still work.
fn assert_operator_data_kept(client: &mut Client) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM filegc.pending WHERE path = 'a.jpg'),
                    (SELECT count(*) FROM filegc.invalid_refs),
                    filegc.setting('orphan_min_age')",
            &[],
        )
        .unwrap();
    let kept: (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        kept,
        (1, 1, "2 hours".to_owned()),
        "tombstones, invalid references and settings survive"
    );
    client.batch_execute("DELETE FROM photos").unwrap();
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM filegc.pending WHERE path = 'b.jpg'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(pending, 1, "the triggers keep working after the update");
}

#[test]
fn install_sql_upgrades_an_older_portable_install_in_place() {
    let fresh_db = cluster().create_plain_database();
    let mut fresh_client = fresh_db.connect();
    fresh_client
        .batch_execute(&portable::install_script())
        .unwrap();
    let fresh = schema_signature(&mut fresh_client);

    let old_db = cluster().create_plain_database();
    let mut client = old_db.connect();
    client
        .batch_execute(&portable::install_script_of(FIRST_RELEASE).unwrap())
        .unwrap();
    client.batch_execute(OPERATOR_DATA).unwrap();

    let said = filegc_on(&old_db, &["install-sql", "--apply"]);
    assert!(
        said.contains(&format!("from {FIRST_RELEASE} to {}", portable::VERSION)),
        "{said}"
    );
    let version: (String, String) = {
        let row = client
            .query_one("SELECT engine, version FROM filegc.version()", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        version,
        ("portable".to_owned(), portable::VERSION.to_owned())
    );

    let upgraded = schema_signature(&mut client);
    let differences = differences(&fresh, &upgraded);
    assert!(
        differences.is_empty(),
        "upgraded portable schema differs:\n{}",
        differences.join("\n")
    );
    assert_operator_data_kept(&mut client);

    let again = filegc_on(&old_db, &["install-sql", "--apply"]);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn released_scripts_are_never_edited() {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/archive");
    let sums = std::fs::read_to_string(archive.join("SHA256SUMS")).expect("sql/archive/SHA256SUMS");
    let mut checked = 0;
    for line in sums
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (expected, file) = line.split_once("  ").expect("`<sha256>  <file>` lines");
        let script = archive.join("..").join(file);
        let output = std::process::Command::new("sha256sum")
            .arg(&script)
            .output()
            .expect("sha256sum runs");
        let actual = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            actual.split_whitespace().next(),
            Some(expected),
            "{file} was released and must not change: ship the change in a new upgrade script"
        );
        checked += 1;
    }
    assert!(checked >= 1, "SHA256SUMS lists no released script");
}

#[test]
fn every_function_view_and_table_says_what_it_is_for() {
    let db = cluster().create_database();
    let mut client = db.connect();
    let silent: Vec<String> = client
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = 'filegc'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
             UNION ALL
             SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace = 'filegc'::regnamespace AND c.relkind IN ('r', 'v', 'u', 'p')
                AND obj_description(c.oid, 'pg_class') IS NULL
             ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        silent.is_empty(),
        "without a COMMENT (\\df and \\dv show it; internal ones start with 'Internal'): {silent:?}"
    );
}
