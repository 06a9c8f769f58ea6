//! Issue 5, scenario 5: hostile volume contents. The sweeper reports each
//! one with its path and the reason, deletes none of the canaries outside the
//! root, exits 1 where files failed, and goes on with the rest.
//!
//! A file the sweeper cannot delete is simulated with `chattr +i` (tests run
//! as root, and permission bits do not stop root); the read-only file system is
//! a real read-only bind mount in a private mount namespace (`unshare -m`).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use filegc_tests::sweeper::{describe_output, stderr};
use filegc_tests::test_env::TestEnv;

/// Makes paths immutable with `chattr +i`, and mutable again on Drop so the temporary folder can go.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: &[PathBuf]) -> Immutable {
        for path in paths {
            chattr("+i", path);
        }
        Immutable(paths.to_vec())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            chattr("-i", path);
        }
    }
}

fn chattr(flag: &str, path: &Path) {
    let status = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .expect("running chattr");
    assert!(status.success(), "chattr {flag} {} failed", path.display());
}

fn schedule(env: &mut TestEnv, paths: &[&str]) -> i32 {
    let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    env.client
        .query_one(
            "SELECT filegc.schedule_delete($1, force => true)",
            &[&paths],
        )
        .unwrap()
        .get(0)
}

fn outcome(env: &mut TestEnv, path: &str) -> (String, Option<String>, Option<String>) {
    let row = env
        .client
        .query_one(
            "SELECT state, outcome, last_error FROM filegc.tombstones WHERE path = $1 ORDER BY id DESC LIMIT 1",
            &[&path],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

fn assert_reports(output: &Output, path: &str, reason: &str) {
    let text = stderr(output);
    assert!(
        text.lines()
            .any(|line| line.contains(path) && line.contains(reason)),
        "no line of stderr names {path:?} with {reason:?}:\n{}",
        describe_output(output)
    );
}

/// The paths a listing printed with `--json`.
fn listed_paths(listing: &Output) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_sweeper_reports_hostile_volume_contents_and_goes_on() {
    let mut env = TestEnv::new();
    symlink(env.outside("passwd"), env.path("link.jpg")).unwrap();
    symlink(env.outside("sibling"), env.path("linkdir")).unwrap();
    let fifo = env.path("pipe.jpg");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success(), "mkfifo failed");
    let not_utf8 = env
        .volume
        .join(OsStr::from_bytes(b"user_1_1700000000\xff.jpg"));
    fs::write(&not_utf8, "not utf-8\n").unwrap();
    env.write("replaced.jpg", "a file at scan time\n");
    env.write("immutable.jpg", "cannot be deleted\n");
    env.write("plain.jpg", "an ordinary file\n");

    let scan = env.run(&["scan"]);
    assert_eq!(scan.status.code(), Some(1), "{}", describe_output(&scan));
    assert_reports(&scan, "pipe.jpg", "FIFO");
    assert_reports(&scan, "user_1_1700000000", "not valid UTF-8");

    // Between scan and sweep, a directory takes the file's place.
    fs::remove_file(env.path("replaced.jpg")).unwrap();
    env.write("replaced.jpg/inner.jpg", "inside a directory\n");
    let _immutable = Immutable::set(&[env.path("immutable.jpg")]);
    let all = [
        "link.jpg",
        "linkdir/x.jpg",
        "pipe.jpg",
        "replaced.jpg",
        "immutable.jpg",
        "plain.jpg",
    ];
    assert_eq!(schedule(&mut env, &all), all.len() as i32);

    let sweep = env.run(&["sweep"]);
    assert_eq!(sweep.status.code(), Some(1), "{}", describe_output(&sweep));
    assert_reports(&sweep, "linkdir", "symbolic link");
    assert_reports(&sweep, "replaced.jpg", "directory");
    assert_reports(&sweep, "immutable.jpg", "Operation not permitted");
    env.assert_canaries_intact();

    // The link went into the trash as a link; its target stayed.
    assert!(fs::symlink_metadata(env.path("link.jpg")).is_err());
    assert!(fs::symlink_metadata(env.path(".filegc-trash/link.jpg"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(outcome(&mut env, "link.jpg").1.as_deref(), Some("trashed"));
    // The rest went on: the ordinary file is trashed.
    assert!(!env.path("plain.jpg").exists());
    assert_eq!(outcome(&mut env, "plain.jpg").1.as_deref(), Some("trashed"));
    // What failed stays where it was and is retried, with the reason recorded.
    assert!(env.path("replaced.jpg/inner.jpg").is_file());
    assert!(env.path("immutable.jpg").is_file());
    assert!(not_utf8.is_file());
    for path in ["linkdir/x.jpg", "replaced.jpg", "immutable.jpg"] {
        let (state, done, error) = outcome(&mut env, path);
        assert_eq!(state, "pending", "{path} is retried later");
        assert_eq!(done, None, "{path}");
        assert!(error.is_some(), "{path} records why it failed");
    }
    // A FIFO is renamed into the trash, never opened (opening one would hang).
    assert!(fs::symlink_metadata(env.path(".filegc-trash/pipe.jpg"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(outcome(&mut env, "pipe.jpg").1.as_deref(), Some("trashed"));
}

/// `filegc orphans` looks at the volume without a scan: the same contents
/// are reported, the listing goes on, and it ends with status 1.
#[test]
fn the_fresh_orphan_listing_reports_hostile_volume_contents_and_goes_on() {
    let env = TestEnv::new();
    symlink(env.outside("passwd"), env.path("link.jpg")).unwrap();
    let status = Command::new("mkfifo")
        .arg(env.path("pipe.jpg"))
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    let not_utf8 = env
        .volume
        .join(OsStr::from_bytes(b"user_1_1700000000\xff.jpg"));
    fs::write(&not_utf8, "not utf-8\n").unwrap();
    env.write("plain.jpg", "an ordinary file\n");

    let listing = env.run(&["orphans", "--json"]);
    assert_eq!(
        listing.status.code(),
        Some(1),
        "{}",
        describe_output(&listing)
    );
    assert_reports(&listing, "pipe.jpg", "FIFO");
    assert_reports(&listing, "user_1_1700000000", "not valid UTF-8");
    assert_eq!(listed_paths(&listing), ["link.jpg", "plain.jpg"]);
    env.assert_canaries_intact();
}

/// A name with a backslash is never a volume path (path_rules): no row can
/// reference it and no route can delete it. The scan reports it as the fresh
/// listing does, instead of inventorying it, so that no listing shows it as
/// an orphan that `delete-orphans` could never delete.
#[test]
fn a_name_with_a_backslash_is_reported_and_never_inventoried() {
    let env = TestEnv::new();
    let odd = "user_1_1700000000\\x.jpg";
    env.write(odd, "a backslash in the name\n");
    env.write("plain.jpg", "an ordinary file\n");

    let scan = env.run(&["scan"]);
    assert_eq!(scan.status.code(), Some(1), "{}", describe_output(&scan));
    assert_reports(&scan, odd, "contains a backslash");
    let listings: [(&[&str], i32); 2] = [
        (&["orphans", "--no-scan", "--json"], 0),
        (&["orphans", "--json"], 1),
    ];
    for (args, status) in listings {
        let listing = env.run(args);
        assert_eq!(
            listing.status.code(),
            Some(status),
            "{args:?}: {}",
            describe_output(&listing)
        );
        assert_eq!(listed_paths(&listing), ["plain.jpg"], "{args:?}");
    }
    assert!(env.path(odd).is_file());
    env.assert_canaries_intact();
}

/// Runs the binary with the volume mounted read-only in a private mount namespace; `None` when the machine does not allow it.
fn run_on_read_only_volume(env: &TestEnv, args: &[&str]) -> Option<Output> {
    let volume = env.volume.display().to_string();
    let probe = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" \"$0\"",
        ])
        .arg(&volume)
        .output()
        .ok()?;
    if !probe.status.success() {
        eprintln!(
            "skipped: no read-only bind mount here: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        return None;
    }
    let inner = env.command(args);
    let mut command = Command::new("unshare");
    command
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" \"$0\" && shift && exec \"$@\"",
        ])
        .arg(&volume)
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    Some(
        command
            .output()
            .expect("running filegc in a mount namespace"),
    )
}

#[test]
fn a_read_only_volume_fails_each_file_and_keeps_the_tombstones() {
    let mut env = TestEnv::new();
    env.write("user_1_1700000000.jpg", "on a read-only volume\n");
    env.write("user_2_1700000000.jpg", "on a read-only volume\n");
    assert_eq!(
        schedule(
            &mut env,
            &["user_1_1700000000.jpg", "user_2_1700000000.jpg"]
        ),
        2
    );
    let Some(sweep) = run_on_read_only_volume(&env, &["sweep"]) else {
        return;
    };
    assert_eq!(sweep.status.code(), Some(1), "{}", describe_output(&sweep));
    assert_reports(&sweep, "user_1_1700000000.jpg", "Read-only file system");
    assert_reports(&sweep, "user_2_1700000000.jpg", "Read-only file system");
    env.assert_canaries_intact();
    for path in ["user_1_1700000000.jpg", "user_2_1700000000.jpg"] {
        assert!(env.path(path).is_file());
        let (state, done, error) = outcome(&mut env, path);
        assert_eq!((state.as_str(), done), ("pending", None), "{path}");
        assert!(
            error.is_some_and(|e| e.contains("Read-only file system")),
            "{path} records the reason"
        );
    }
}
