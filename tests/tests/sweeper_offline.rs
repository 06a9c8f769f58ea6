//! `filegc` with a database that cannot be reached: the disk alone for `list`, `old` and `stats`, exit 3 for the rest.

use std::net::TcpListener;
use std::process::Output;

use filegc_tests::sweeper::stderr;
use filegc_tests::test_env::TestEnv;
use serde_json::Value;

/// A URL whose port was just free and is closed now.
fn closed_port_url() -> (String, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    (format!("postgres://nobody@{host}/none"), host)
}

/// A volume with one image and one other file, and an unreachable database.
fn offline(args: &[&str]) -> (Output, String) {
    let env = TestEnv::new();
    env.write_aged("sub/user_1_1700000000.jpg", 1_000, 100);
    env.write_aged("notes.txt", 10, 1);
    let (url, host) = closed_port_url();
    let output = env.command_on(&url, args).output().unwrap();
    (output, host)
}

#[test]
fn list_shows_the_disk_with_references_unknown_and_a_warning() {
    let (output, host) = offline(&["list", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let files: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    let files = files.as_array().expect("an array");
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["notes.txt", "sub/user_1_1700000000.jpg"]);
    assert_eq!(files[1]["size_bytes"], 1_000);
    assert_eq!(files[1]["referenced"], Value::Null);
    assert_eq!(files[1]["managed"], true);
    assert_eq!(files[0]["managed"], false);
    let stderr = stderr(&output);
    assert!(stderr.contains(&host), "{stderr}");
    assert!(stderr.contains("needs the database"), "{stderr}");
}

#[test]
fn old_and_stats_work_from_the_disk() {
    let (output, _) = offline(&["old", "--days", "30", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let old: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(old.as_array().unwrap().len(), 1);
    assert_eq!(old[0]["path"], "sub/user_1_1700000000.jpg");

    let (output, _) = offline(&["stats", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stats: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["total_files"], 1);
    assert_eq!(stats["total_bytes"], 1_000);
    assert_eq!(stats["unmanaged_files"], 1);
    assert_eq!(stats["orphaned_files"], Value::Null);
    assert!(stats.get("last_sweep_at").is_some());
}

#[test]
fn commands_that_need_the_database_exit_3_naming_the_host_and_cause() {
    for command in [
        &["orphans"][..],
        &["delete-orphans", "--yes"],
        &["scan"],
        &["sweep"],
    ] {
        let (output, host) = offline(command);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{command:?}: {}",
            stderr(&output)
        );
        let stderr = stderr(&output);
        assert!(stderr.contains(&host), "{command:?}: {stderr}");
        assert!(stderr.contains("refused"), "{command:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{command:?}");
    }
}
