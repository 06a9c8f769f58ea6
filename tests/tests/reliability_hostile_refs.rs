//! Issue 5, scenario 4: hostile and odd references, through the triggers and
//! through `filegc.schedule_delete`, never make a file outside the volume
//! root disappear and never make the application's write fail.
//!
//! `FILEGC_SOAK=1` raises the number of generated values from 300 to 20,000.

use filegc_tests::fixtures::PREFIX;
use filegc_tests::reliability::path_rules::{
    normalize, validate_relative, InvalidReason, Reference,
};
use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;
use postgres::Client;

/// Values that cannot name a file under the root: each must land in `filegc.invalid_refs`.
fn invalid_values() -> Vec<String> {
    [
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "./../secret.jpg",
        "/app/facial_evaluations/../secret.jpg",
        "/app/facial_evaluations/../volume2/x.jpg",
        "https://cdn.example.com/app/facial_evaluations/%2e%2e/%2e%2e/passwd",
        "https://cdn.example.com/app/facial_evaluations/..%2Fsecret.jpg",
        "https://cdn.example.com/%2E%2E/%2e%2E/etc/passwd?x=1#y",
        "https://cdn.example.com/%ff%fe.jpg",
        "file:///etc/passwd",
        "..\\..\\etc\\passwd",
        "/app/facial_evaluations/sub\\..\\..\\secret.jpg",
        "/app/facial_evaluations/",
        "a//b",
        "a/./b",
    ]
    .map(str::to_owned)
    .into_iter()
    // Longer than any file system allows a name to be.
    .chain([format!("{PREFIX}{}", "a".repeat(4_096))])
    .collect()
}

/// Odd values that are plain references inside the root, with the path each
/// means. Each is an image name (filegc deletes nothing else) that no
/// invalid value below names (those are never deleted), and each would
/// leave the volume if anything decoded its odd parts into `..`.
fn odd_valid_values() -> Vec<(String, String)> {
    vec![
        (
            "http://user:secret@cdn.example.com/app/facial_evaluations/cred.jpg?sig=../../x#../frag"
                .to_owned(),
            "cred.jpg".to_owned(),
        ),
        (format!("{PREFIX}%2e%2e/odd.jpg"), "%2e%2e/odd.jpg".to_owned()),
        (
            format!("{PREFIX}\u{2024}\u{2024}/odd.jpg"),
            "\u{2024}\u{2024}/odd.jpg".to_owned(),
        ),
        (
            format!("{PREFIX}\u{FF0E}\u{FF0E}/odd.jpg"),
            "\u{FF0E}\u{FF0E}/odd.jpg".to_owned(),
        ),
        (
            format!("{PREFIX}\u{2215}etc\u{2215}odd.jpg"),
            "\u{2215}etc\u{2215}odd.jpg".to_owned(),
        ),
        // A query names nothing: what comes before it is the file.
        (format!("{PREFIX}query.jpg?x=../../passwd"), "query.jpg".to_owned()),
    ]
}

/// Inserts, updates and deletes rows holding each value as the application role; panics if a write fails.
fn write_and_delete_as_app(env: &TestEnv, values: &[String]) {
    let mut app = env.db.connect_as("app");
    let mut tx = app.transaction().unwrap();
    for value in values {
        tx.execute(
            "INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path) VALUES (1, $1, $1)",
            &[value],
        )
        .unwrap_or_else(|e| panic!("the application's insert of {value:?} failed: {e:?}"));
        tx.execute(
            "INSERT INTO generations (user_id, input_image_path) VALUES (1, $1)",
            &[value],
        )
        .unwrap_or_else(|e| panic!("the application's insert of {value:?} failed: {e:?}"));
    }
    tx.commit().unwrap();
    app.batch_execute(
        "UPDATE facial_evaluations SET secondary_image_path = NULL;
         UPDATE generations SET output_image_path = left(input_image_path, 500);
         DELETE FROM facial_evaluations;
         DELETE FROM generations;",
    )
    .expect("the application's update and delete");
}

/// Every open or finished tombstone names a plain relative path.
fn assert_tombstones_are_plain(client: &mut Client) {
    for row in client
        .query("SELECT path FROM filegc.tombstones", &[])
        .unwrap()
    {
        let path: String = row.get(0);
        assert_eq!(
            validate_relative(&path),
            Ok(()),
            "tombstone for {path:?} escapes the root"
        );
    }
}

#[test]
fn hostile_references_never_reach_outside_the_root() {
    let mut env = TestEnv::new();
    let invalid = invalid_values();
    let valid = odd_valid_values();
    for value in &invalid {
        assert!(
            matches!(normalize(value, &[PREFIX]), Reference::Invalid(_)),
            "the path rules accept {value:?}"
        );
    }
    for (value, path) in &valid {
        assert_eq!(normalize(value, &[PREFIX]).path(), Some(path.as_str()));
        env.write(path, "inside the volume\n");
    }

    let mut all: Vec<String> = invalid.clone();
    all.extend(valid.iter().map(|(value, _)| value.clone()));
    write_and_delete_as_app(&env, &all);

    let recorded = env.invalid_values();
    for value in &invalid {
        assert!(
            recorded.contains(value),
            "{value:?} is not in filegc.invalid_refs: {recorded:?}"
        );
    }
    for (value, _) in &valid {
        assert!(!recorded.contains(value), "{value:?} is a valid reference");
    }
    env.client
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap();
    for (_, path) in &valid {
        let open: i64 = env
            .client
            .query_one(
                "SELECT count(*) FROM filegc.tombstones WHERE path = $1 AND state = 'pending'",
                &[path],
            )
            .unwrap()
            .get(0);
        assert_eq!(open, 1, "deleting the rows of {path:?} schedules it");
    }

    // schedule_delete takes paths, not stored values: every hostile one is skipped.
    let mut asked = all.clone();
    asked.extend(
        ["passwd", "etc/passwd", "b", "sibling/x.jpg", "secret.jpg"]
            .map(|canary| env.outside(canary).display().to_string()),
    );
    asked.extend(["../passwd", "../etc/passwd", "../volume2/x.jpg", ".."].map(str::to_owned));
    let scheduled: i32 = env
        .client
        .query_one(
            "SELECT filegc.schedule_delete($1, force => true)",
            &[&asked],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        scheduled, 0,
        "every plain path among them is scheduled already"
    );
    assert_tombstones_are_plain(&mut env.client);

    let scan = env.run(&["scan"]);
    assert!(scan.status.success(), "{}", describe_output(&scan));
    let sweep = env.run(&["sweep"]);
    // The 4,096-byte name cannot exist: gone already, or a failure reported.
    assert!(
        matches!(sweep.status.code(), Some(0 | 1)),
        "{}",
        describe_output(&sweep)
    );
    env.assert_canaries_intact();
    for (_, path) in valid.iter().filter(|(_, path)| path.len() < 255) {
        assert!(!env.path(path).exists(), "{path:?} was not swept");
        assert!(
            env.path(&format!(".filegc-trash/{path}")).is_file(),
            "{path:?} is not in the trash"
        );
    }
}

#[test]
fn the_sweeper_refuses_hostile_paths_even_when_the_database_holds_them() {
    let mut env = TestEnv::new();
    // The table refuses such paths, but a superuser can drop that check (or
    // restore data from before it); the sweeper checks each path again before
    // it touches the disk.
    let hostile: Vec<String> = [
        "../passwd",
        "../etc/passwd",
        "../volume2/x.jpg",
        "..",
        "sub/../../secret.jpg",
        "..\\secret.jpg",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain(["passwd", "etc/passwd", "b"].map(|canary| env.outside(canary).display().to_string()))
    .collect();
    let insert = "INSERT INTO filegc.tombstones (path, reason, due_at) SELECT p, 'manual', now() FROM unnest($1::text[]) p";
    for path in &hostile {
        let refused = env
            .client
            .execute(insert, &[&vec![path.clone()]])
            .expect_err(path);
        assert_eq!(
            refused.as_db_error().and_then(|e| e.constraint()),
            Some("tombstones_path_is_relative"),
            "{path}: {refused}"
        );
    }
    env.client
        .batch_execute("ALTER TABLE filegc.tombstones DROP CONSTRAINT tombstones_path_is_relative")
        .unwrap();
    env.client.execute(insert, &[&hostile]).unwrap();
    let sweep = env.run(&["sweep", "--no-trash"]);
    let stderr = String::from_utf8_lossy(&sweep.stderr);
    assert_eq!(sweep.status.code(), Some(1), "{}", describe_output(&sweep));
    assert!(
        stderr.contains("../volume2/x.jpg") && stderr.contains("sub/../../secret.jpg"),
        "stderr names the refused paths: {stderr}"
    );
    // Names filegc does not manage never reach the sweeper's own check: the
    // final check keeps them first.
    let unmanaged: i64 = env
        .client
        .query_one(
            "SELECT count(*) FROM filegc.tombstones WHERE path = '../passwd' AND outcome = 'skipped_unmanaged'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unmanaged, 1);
    env.assert_canaries_intact();
    let done: i64 = env
        .client
        .query_one(
            "SELECT count(*) FROM filegc.tombstones WHERE outcome IN ('deleted', 'trashed')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(done, 0, "no hostile tombstone is reported carried out");
}

#[test]
fn nul_bytes_are_invalid_and_postgres_cannot_store_them() {
    for value in [
        "a\0b",
        "\0",
        "/app/facial_evaluations/x\0.jpg",
        "https://h/x%00.jpg",
    ] {
        assert_eq!(
            normalize(value, &[PREFIX]),
            Reference::Invalid(InvalidReason::Nul),
            "{value:?}"
        );
    }
    assert_eq!(validate_relative("x\0.jpg"), Err(InvalidReason::Nul));
    // PostgreSQL's text refuses the byte before any trigger runs.
    let env = TestEnv::new();
    let error = env
        .db
        .connect_as("app")
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, $1)",
            &[&"a\0b"],
        )
        .unwrap_err();
    assert!(
        format!("{error:?}").contains("0x00"),
        "PostgreSQL names the NUL byte: {error:?}"
    );
}

/// Many values built from the pieces hostile references are made of, in a fixed pseudo-random order.
fn generated_values(count: usize) -> Vec<String> {
    const HEADS: [&str; 7] = [
        "",
        "/",
        "./",
        PREFIX,
        "https://u:p@cdn.example.com/app/facial_evaluations/",
        "file://",
        "s3://bucket/",
    ];
    const PIECES: [&str; 14] = [
        "..",
        ".",
        "",
        "%2e%2e",
        "%2E%2e%2f..",
        "..\\..",
        "\u{2024}\u{2024}",
        "\u{FF0E}\u{FF0E}",
        "etc",
        "passwd",
        "x.jpg",
        "volume2",
        "sibling",
        "user_1_1700000000.jpg",
    ];
    const TAILS: [&str; 4] = ["", "?q=../../passwd", "#../..", "?a=1#b"];
    let mut state: u64 = 0x5eed_f11e_9c00_0001;
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % bound
    };
    (0..count)
        .map(|_| {
            let segments: Vec<&str> = (0..1 + next(5))
                .map(|_| PIECES[next(PIECES.len())])
                .collect();
            format!(
                "{}{}{}",
                HEADS[next(HEADS.len())],
                segments.join("/"),
                TAILS[next(TAILS.len())]
            )
        })
        .collect()
}

#[test]
fn generated_hostile_references_never_reach_outside_the_root() {
    let count = if std::env::var_os("FILEGC_SOAK").is_some() {
        20_000
    } else {
        300
    };
    let mut env = TestEnv::new();
    env.write("user_1_1700000000.jpg", "inside the volume\n");
    let values = generated_values(count);
    write_and_delete_as_app(&env, &values);
    let recorded = env.invalid_values();
    for value in &values {
        if let Reference::Invalid(_) = normalize(value, &[PREFIX]) {
            assert!(
                recorded.contains(value),
                "{value:?} is not in filegc.invalid_refs"
            );
        }
    }
    let scheduled: i32 = env
        .client
        .query_one(
            "SELECT filegc.schedule_delete($1, force => true)",
            &[&values],
        )
        .unwrap()
        .get(0);
    assert!(scheduled >= 0);
    assert_tombstones_are_plain(&mut env.client);
    for command in [&["scan"][..], &["sweep"][..]] {
        let output = env.run(command);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{}",
            describe_output(&output)
        );
    }
    env.assert_canaries_intact();
}
