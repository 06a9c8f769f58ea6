//! Issue 5, scenario 6: misconfiguration. A prefix that does not match what
//! the application stores must not turn its files into orphans: the
//! invalid-reference protection and the circuit breaker stop the deletion and
//! tell the operator what is wrong.

use std::str::FromStr;

use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;

/// How many files the application references.
const FILES: usize = 20;

fn name(i: usize) -> String {
    format!("user_{i}_1700000000.jpg")
}

/// A volume of `FILES` referenced images whose column is tracked with `prefixes`.
fn misconfigured(stored_prefix: &str, tracked_prefixes: &[&str]) -> TestEnv {
    let mut env = TestEnv::new();
    env.client
        .batch_execute("SELECT filegc.untrack('facial_evaluations', 'image_path')")
        .unwrap();
    let prefixes: Vec<String> = tracked_prefixes.iter().map(|p| (*p).to_owned()).collect();
    env.client
        .execute(
            "SELECT filegc.track('facial_evaluations', 'image_path', $1)",
            &[&prefixes],
        )
        .unwrap();
    let mut app = env.db.connect_as("app");
    for i in 0..FILES {
        env.write(&name(i), "referenced\n");
        app.execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES ($1, $2)",
            &[&(i as i64), &format!("{stored_prefix}{}", name(i))],
        )
        .unwrap();
    }
    let scan = env.run(&["scan"]);
    assert!(scan.status.success(), "{}", describe_output(&scan));
    env
}

fn assert_every_file_stays(env: &mut TestEnv) {
    for i in 0..FILES {
        assert!(env.path(&name(i)).is_file(), "{} was deleted", name(i));
    }
    let open: i64 = env
        .client
        .query_one("SELECT count(*) FROM filegc.pending", &[])
        .unwrap()
        .get(0);
    assert_eq!(open, 0, "nothing referenced is scheduled");
    env.assert_canaries_intact();
}

#[test]
fn a_prefix_that_makes_every_reference_invalid_deletes_nothing() {
    // The application stores /app/facial_evaluations/...; the operator tracked /app/images/.
    let mut env = misconfigured("/app/facial_evaluations/", &["/app/images/"]);
    let invalid: i64 = env
        .client
        .query_one(
            "SELECT count(*) FROM filegc.invalid_refs WHERE problem LIKE '%absolute%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        invalid as usize, FILES,
        "every value is recorded as invalid"
    );

    let output = env.run(&["delete-orphans", "--yes"]);
    assert!(
        matches!(output.status.code(), Some(0 | 2)),
        "{}",
        describe_output(&output)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("No images to delete.")
            && said.contains(&format!(
                "Invalid references: {FILES} stored values name no file under the volume; {FILES} images"
            ))
            && said.contains("filegc.track()"),
        "delete-orphans says why it deletes nothing: {}",
        describe_output(&output)
    );
    let deleted: i64 = env
        .client
        .query_one(
            "SELECT count(*) FROM filegc.cleanup_orphans(dry_run => false)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(deleted, 0);
    let sweep = env.run(&["sweep"]);
    assert!(sweep.status.success(), "{}", describe_output(&sweep));
    assert_every_file_stays(&mut env);
    // What tells the operator: the warning each write gets, and filegc.invalid_refs.
    let warnings = warnings_of(
        &env,
        &["INSERT INTO facial_evaluations (user_id, image_path) VALUES (0, '/app/facial_evaluations/new.jpg')"],
    )
    .concat();
    assert!(
        warnings.iter().any(|w| w.contains("not a file reference")
            && w.contains("filegc.invalid_refs")
            && w.contains("filegc.track()")),
        "the application's write is warned, with the fix: {warnings:?}"
    );
}

#[test]
fn a_prefix_that_points_every_reference_elsewhere_trips_the_breaker() {
    // The references are valid paths, but under a folder the volume does not
    // have: every file looks like an orphan.
    let mut env = misconfigured("/app/facial_evaluations/", &["/app/"]);
    let output = env.run(&["delete-orphans", "--yes"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        describe_output(&output)
    );
    assert!(
        stderr.contains("circuit breaker") && stderr.contains("max_delete_fraction"),
        "the refusal names the breaker and its setting: {stderr}"
    );
    let error = env
        .client
        .query(
            "SELECT * FROM filegc.cleanup_orphans(dry_run => false)",
            &[],
        )
        .unwrap_err();
    let message = error.as_db_error().expect("a database error").message();
    assert!(message.contains("circuit breaker"), "{message}");
    let sweep = env.run(&["sweep"]);
    assert!(sweep.status.success(), "{}", describe_output(&sweep));
    assert_every_file_stays(&mut env);
}

/// The warnings `app` gets while it runs `statements`, one transaction each.
fn warnings_of(env: &TestEnv, statements: &[&str]) -> Vec<Vec<String>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut app = postgres::Config::from_str(&env.db.url_as("app"))
        .unwrap()
        .notice_callback(move |notice| sender.send(notice.message().to_owned()).unwrap())
        .connect(postgres::NoTls)
        .unwrap();
    statements
        .iter()
        .map(|statement| {
            app.batch_execute(statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
            receiver.try_iter().collect()
        })
        .collect()
}

/// A forgotten prefix, then a bulk write: each invalid value used to get
/// a warning of its own (200,000 warnings for a 200,000-row INSERT, in the
/// application's log and the server's). A transaction is warned about the
/// first ten, then once that the rest are recorded without a warning each;
/// every value is still recorded, and the next transaction is warned again.
#[test]
fn a_bulk_write_of_invalid_values_is_warned_about_ten_times_and_once_more() {
    let mut env = TestEnv::new();
    let bulk = "INSERT INTO facial_evaluations (user_id, image_path)
                SELECT g, '/srv/old_volume/user_' || g || '_1.jpg' FROM generate_series(1, 200) AS g";
    let single = "INSERT INTO facial_evaluations (user_id, image_path)
                  VALUES (0, '/srv/old_volume/user_0_1.jpg')";
    let warned = warnings_of(&env, &[bulk, single]);

    let one_by_one = |warnings: &[String]| {
        warnings
            .iter()
            .filter(|w| w.contains("which is not a file reference"))
            .count()
    };
    let summary = |warnings: &[String]| {
        format!(
            "{} warnings, the last: {:?}",
            warnings.len(),
            warnings.last()
        )
    };
    assert_eq!(one_by_one(&warned[0]), 10, "{}", summary(&warned[0]));
    assert_eq!(warned[0].len(), 11, "{}", summary(&warned[0]));
    let rest = &warned[0][10];
    assert!(
        rest.contains("more stored values")
            && rest.contains("filegc.invalid_refs")
            && rest.contains("filegc.track()"),
        "the last warning says where the rest went, and the fix: {rest}"
    );
    assert_eq!(one_by_one(&warned[1]), 1, "{}", summary(&warned[1]));
    assert_eq!(warned[1].len(), 1, "{}", summary(&warned[1]));

    let recorded: i64 = env
        .client
        .query_one(
            "SELECT count(*) FROM filegc.invalid_refs WHERE value LIKE '/srv/old_volume/%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, 201, "every invalid value is recorded");
}
