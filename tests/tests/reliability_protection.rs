//! The promise, scenario 10 (a): whatever route scheduled a deletion, the
//! final check keeps a file that an invalid reference may name, a file that
//! a value with a query string or a fragment names, and a file filegc no
//! longer manages.

use std::str::FromStr;

use filegc_tests::fixtures::PREFIX;
use filegc_tests::reliability::final_verdict;
use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;

fn image(i: usize) -> String {
    format!("user_{i}_1700000000.jpg")
}

/// Ten referenced images on the volume, scanned.
fn ten_referenced_images() -> TestEnv {
    let env = TestEnv::new();
    for i in 0..10 {
        env.write(&image(i), "referenced\n");
        env.insert_row(i as i64, &format!("{PREFIX}{}", image(i)));
    }
    env.run_ok(&["scan"]);
    env
}

fn assert_kept(env: &TestEnv, files: &[String]) {
    for file in files {
        assert!(env.on_volume(file), "{file} was deleted");
    }
    env.assert_canaries_intact();
}

#[test]
fn a_retrack_with_a_typo_in_the_prefix_is_refused_and_deletes_nothing_when_forced() {
    let mut env = ten_referenced_images();
    let typo =
        "SELECT filegc.track('facial_evaluations', 'image_path', '{/app/facial_evalutions/}')";
    let refusal = env
        .client
        .batch_execute(typo)
        .expect_err("a re-track that turns every reference invalid is refused");
    let db = refusal.as_db_error().expect("a database error");
    assert!(
        db.message().contains("10 of the 10") && db.hint().unwrap_or_default().contains("force"),
        "the refusal gives the count and the way through: {} / {:?}",
        db.message(),
        db.hint()
    );

    // Forced, it goes ahead with a warning; the files stay, because the
    // references it turned invalid still name them.
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut operator = postgres::Config::from_str(&env.db.url())
        .unwrap()
        .notice_callback(move |notice| sender.send(notice.message().to_owned()).unwrap())
        .connect(postgres::NoTls)
        .unwrap();
    operator
        .batch_execute(
            "SELECT filegc.track('facial_evaluations', 'image_path', '{/app/facial_evalutions/}', force => true)",
        )
        .unwrap();
    drop(operator);
    let warnings: Vec<String> = receiver.try_iter().collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("10 of the 10") && w.contains("invalid")),
        "the forced re-track warns with the count: {warnings:?}"
    );
    let sweep = env.run(&["sweep", "--no-trash"]);
    assert!(sweep.status.success(), "{}", describe_output(&sweep));
    assert_kept(&env, &(0..10).map(image).collect::<Vec<_>>());
    let removed: i64 = env
        .client
        .query_one(
            "SELECT count(*) FROM filegc.deletions WHERE outcome IN ('trashed', 'deleted')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(removed, 0);
}

#[test]
fn a_row_updated_to_a_url_outside_every_prefix_keeps_its_file() {
    let env = ten_referenced_images();
    env.app()
        .execute(
            "UPDATE facial_evaluations SET image_path = $1 WHERE user_id = 3",
            &[&format!("https://cdn.example.com/images/{}?v=2", image(3))],
        )
        .unwrap();
    let sweep = env.run(&["sweep", "--no-trash"]);
    assert!(sweep.status.success(), "{}", describe_output(&sweep));
    assert_kept(&env, &[image(3)]);
    let orphans = env.run_ok(&["orphans", "--json"]);
    assert!(
        !orphans.contains(&image(3)),
        "a name an invalid reference may mean is no orphan: {orphans}"
    );
}

#[test]
fn query_strings_and_fragments_name_the_file_they_follow() {
    let mut env = TestEnv::new();
    let valid_with_query = "user_903_1.jpg";
    let invalid_with_query = "user_901_1.jpg";
    let invalid_with_fragment = "user_902_1.jpg";
    let literal_hash = "photo#1.jpg";
    let orphan = "user_904_1.jpg";
    for file in [
        valid_with_query,
        invalid_with_query,
        invalid_with_fragment,
        literal_hash,
        orphan,
        "user_905_1.jpg",
        "user_906_1.jpg",
        "user_907_1.jpg",
    ] {
        env.write(file, "image\n");
    }
    env.insert_row(1, &format!("{PREFIX}{valid_with_query}?v=2"));
    env.insert_row(
        2,
        &format!("https://cdn.example.com/images/{invalid_with_query}?v=2"),
    );
    env.insert_row(
        3,
        &format!("https://cdn.example.com/images/{invalid_with_fragment}#main"),
    );
    env.insert_row(4, literal_hash);
    for (user, file) in [
        (5, "user_905_1.jpg"),
        (6, "user_906_1.jpg"),
        (7, "user_907_1.jpg"),
    ] {
        env.insert_row(user, file);
    }
    let reference: Option<String> = env
        .client
        .query_one(
            "SELECT filegc.ref_path($1, ARRAY[$2])",
            &[&format!("{PREFIX}{valid_with_query}?v=2"), &PREFIX],
        )
        .unwrap()
        .get(0);
    assert_eq!(reference.as_deref(), Some(valid_with_query));

    env.run_ok(&["scan"]);
    let output = env.run(&["delete-orphans", "--yes", "--force"]);
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(!env.on_volume(orphan), "the one true orphan goes");
    let kept: Vec<String> = [
        valid_with_query,
        invalid_with_query,
        invalid_with_fragment,
        literal_hash,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_kept(&env, &kept);

    // Whatever route schedules them, the final check keeps them.
    for file in &kept {
        let verdict = final_verdict(&mut env.client, file);
        assert_ne!(verdict.as_deref(), Ok("delete"), "{file}: {verdict:?}");
    }
}

#[test]
fn a_scheduled_deletion_of_a_file_no_longer_managed_is_skipped() {
    let mut env = TestEnv::new();
    env.write("user_1_1700000000.jpg", "image\n");
    env.insert_row(1, "user_1_1700000000.jpg");
    env.app()
        .batch_execute("DELETE FROM facial_evaluations")
        .unwrap();
    env.set("managed_patterns", "*.png");
    let sweep = env.run(&["sweep", "--no-trash"]);
    assert!(sweep.status.success(), "{}", describe_output(&sweep));
    assert_kept(&env, &["user_1_1700000000.jpg".to_owned()]);
    let outcome: Option<String> = env
        .client
        .query_one(
            "SELECT outcome FROM filegc.deletions WHERE path = 'user_1_1700000000.jpg'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(outcome.as_deref(), Some("skipped_unmanaged"));
}
