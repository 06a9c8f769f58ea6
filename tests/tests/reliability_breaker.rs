//! The promise, scenario 10 (b): the circuit breaker stands in front of every
//! bulk deletion, filtered or not, and counts the files filegc manages.

use filegc_tests::reliability::error_of;
use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;

fn image(i: usize) -> String {
    format!("user_{i}_1700000000.jpg")
}

/// Twenty referenced images whose column is tracked with the prefix
/// `/app/`, so that every reference names a file the volume does not have
/// and every image looks orphaned.
fn everything_looks_orphaned() -> TestEnv {
    let mut env = TestEnv::new();
    env.client
        .batch_execute(
            "SELECT filegc.untrack('facial_evaluations', 'image_path');
             SELECT filegc.track('facial_evaluations', 'image_path', '{/app/}');",
        )
        .unwrap();
    for i in 0..20 {
        env.write(&image(i), "referenced\n");
        env.insert_row(i as i64, &format!("/app/facial_evaluations/{}", image(i)));
    }
    env.run_ok(&["scan"]);
    env
}

fn assert_every_image_stays(env: &TestEnv, count: usize) {
    for i in 0..count {
        assert!(env.on_volume(&image(i)), "{} was deleted", image(i));
    }
    env.assert_canaries_intact();
}

fn assert_refused_by_the_breaker(env: &TestEnv, args: &[&str]) {
    let output = env.run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?}: {}",
        describe_output(&output)
    );
    assert!(
        stderr.contains("circuit breaker") && stderr.contains("--force"),
        "{args:?}: the refusal names the breaker and the CLI's way through: {stderr}"
    );
}

#[test]
fn filters_do_not_take_a_deletion_around_the_breaker() {
    let mut env = everything_looks_orphaned();
    assert_refused_by_the_breaker(&env, &["delete-orphans", "--yes", "--ext", "jpg"]);
    assert_refused_by_the_breaker(&env, &["delete-orphans", "--yes", "--min-size", "1"]);
    assert_refused_by_the_breaker(
        &env,
        &["delete-old", "--days", "0", "--yes", "--ext", "jpg"],
    );
    let paths: Vec<String> = (0..20).map(image).collect();
    let error = error_of(
        &mut env.client,
        &format!(
            "SELECT filegc.schedule_delete(ARRAY[{}])",
            paths
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    assert!(error.contains("circuit breaker"), "{error}");
    let sweep = env.run(&["sweep", "--no-trash"]);
    assert!(sweep.status.success(), "{}", describe_output(&sweep));
    assert_every_image_stays(&env, 20);
}

#[test]
fn the_breaker_counts_the_managed_files_only() {
    let env = TestEnv::new();
    // Eight referenced images, four orphans, and a hundred log files that
    // filegc does not manage: deleting the orphans is a third of the images.
    for i in 0..12 {
        env.write(&image(i), "image\n");
        if i < 8 {
            env.insert_row(i as i64, &image(i));
        }
    }
    for i in 0..100 {
        env.write(&format!("debug_{i}.log"), "log\n");
    }
    env.run_ok(&["scan"]);
    assert_refused_by_the_breaker(&env, &["delete-orphans", "--yes"]);
    assert_every_image_stays(&env, 12);
    let forced = env.run(&["delete-orphans", "--yes", "--force"]);
    assert!(forced.status.success(), "{}", describe_output(&forced));
    assert!(!env.on_volume(&image(11)), "--force passes the breaker");
}
