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

#[test]
fn a_dry_run_says_the_breaker_would_refuse_and_no_question_is_asked_past_it() {
    let env = everything_looks_orphaned();
    let dry_run = env.run(&["delete-orphans", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&dry_run.stdout);
    assert!(dry_run.status.success(), "{}", describe_output(&dry_run));
    assert!(
        stdout.contains("circuit breaker") && stdout.contains("--force"),
        "the dry run tells what the deletion would meet: {stdout}"
    );
    let asked = env.run_on_terminal(&["delete-orphans"], b"yes\n");
    let screen = String::from_utf8_lossy(&asked.stdout);
    assert!(
        !screen.contains("Are you sure"),
        "a deletion the breaker refuses asks nothing first: {screen}"
    );
    assert!(
        screen.contains("circuit breaker") && screen.contains("--force"),
        "{screen}"
    );
    assert_ne!(asked.status.code(), Some(0), "{screen}");
    assert_every_image_stays(&env, 20);
}

#[test]
fn the_old_guides_emergency_routine_works_from_the_menu() {
    let env = TestEnv::new();
    // The emergency procedure: option 5 with 7 days, referenced or not. Here
    // that is every image, far past the breaker's quarter.
    for i in 0..8 {
        env.write_aged(&image(i), 1_000, 30);
        env.insert_row(i as i64, &image(i));
    }
    let yes = env.run_on_terminal(&[], b"5\n7\nyes\n7\n");
    let screen = String::from_utf8_lossy(&yes.stdout);
    assert!(screen.contains("circuit breaker"), "{screen}");
    assert!(
        screen.contains("type the number of images to delete (8)"),
        "{screen}"
    );
    assert_every_image_stays(&env, 8);
    let typed = env.run_on_terminal(&[], b"5\n7\n8\n7\n");
    let screen = String::from_utf8_lossy(&typed.stdout);
    assert!(typed.status.success(), "{screen}");
    assert!(screen.contains("Deleted 8 of 8 images"), "{screen}");
    for i in 0..8 {
        assert!(!env.on_volume(&image(i)), "{} stayed", image(i));
        assert!(env.in_trash(&image(i)), "{} is not in the trash", image(i));
    }
}
