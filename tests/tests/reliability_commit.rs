//! The sweeper's batch moves files into the trash and then commits what it
//! did. When that COMMIT fails, what the sweeper does with the files must
//! follow what the database kept:
//! - refused (an ERROR answers the COMMIT): nothing is recorded, so the
//!   files go back, and the deletions are carried out again later;
//! - the connection fails while the COMMIT is on its way: the batch may be
//!   recorded, so the files stay in the trash, and a later attempt at a
//!   deletion that was not recorded records the copy it finds there.

use std::time::Duration;

use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;
use filegc_tests::{eventually, Cluster};
use postgres::Client;

const IMAGE: &str = "user_7_1700000000.jpg";
const SIZE: usize = 4096;

/// An environment with `IMAGE` on the volume and its deletion due.
fn scheduled_on(cluster: &Cluster) -> TestEnv {
    let mut env = TestEnv::on(cluster);
    env.write_aged(IMAGE, SIZE, 1);
    env.reference(IMAGE);
    env.unreference(IMAGE);
    env
}

fn tombstone(client: &mut Client) -> (String, Option<String>, i32, Option<i64>) {
    let row = client
        .query_one(
            "SELECT state, outcome, attempts, bytes_freed FROM filegc.tombstones WHERE path = $1",
            &[&IMAGE],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// Makes the server wait for a synchronous standby that never comes, and
/// undoes it on drop, so that the database's own teardown does not wait.
struct MissingStandby<'a> {
    client: &'a mut Client,
}

impl<'a> MissingStandby<'a> {
    fn configure(client: &'a mut Client) -> MissingStandby<'a> {
        // ALTER SYSTEM refuses to run in the implicit transaction of a multi-statement query.
        client
            .batch_execute(
                "ALTER SYSTEM SET synchronous_standby_names = 'a_standby_that_never_connects'",
            )
            .unwrap();
        client.batch_execute("SELECT pg_reload_conf()").unwrap();
        MissingStandby { client }
    }
}

impl Drop for MissingStandby<'_> {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute("ALTER SYSTEM RESET synchronous_standby_names");
        let _ = self.client.batch_execute("SELECT pg_reload_conf()");
    }
}

#[test]
fn a_batch_committed_before_its_connection_failed_keeps_its_files_in_the_trash() {
    let cluster = Cluster::start_private();
    let mut env = scheduled_on(&cluster);
    // Every session of this database commits without waiting for a standby,
    // except the transaction that completes a deletion: it waits after its
    // commit record is durable, which leaves the time to cut its connection.
    let database = env.db.name().to_owned();
    env.client
        .batch_execute(&format!(
            "ALTER DATABASE \"{database}\" SET synchronous_commit = local;
             SET synchronous_commit = local;
             CREATE FUNCTION public.completion_waits_for_a_standby() RETURNS trigger
             LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM set_config('synchronous_commit', 'on', true);
                 RETURN NULL;
             END $$;
             CREATE TRIGGER completion_waits_for_a_standby
                 AFTER UPDATE ON filegc.tombstones FOR EACH ROW WHEN (NEW.state = 'done')
                 EXECUTE FUNCTION public.completion_waits_for_a_standby();"
        ))
        .unwrap();
    let mut admin = env.db.connect();
    admin
        .batch_execute("SET synchronous_commit = local")
        .unwrap();
    let _standby = MissingStandby::configure(&mut admin);
    let mut observer = env.db.connect();
    observer
        .batch_execute("SET synchronous_commit = local")
        .unwrap();
    let reloaded = eventually(Duration::from_secs(10), || {
        !env.db
            .connect()
            .query_one("SELECT current_setting('synchronous_standby_names')", &[])
            .unwrap()
            .get::<_, String>(0)
            .is_empty()
    });
    assert!(reloaded, "the server never read synchronous_standby_names");

    let mut sweep = env.start(&["sweep"]);
    let mut waiting: Option<i32> = None;
    let committing = eventually(Duration::from_secs(30), || {
        waiting = observer
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = current_database()",
                &[],
            )
            .unwrap()
            .map(|row| row.get(0));
        waiting.is_some()
    });
    assert!(
        committing,
        "the sweep never reached its COMMIT:\n{}",
        sweep.log()
    );
    assert!(
        env.path(&format!(".filegc-trash/{IMAGE}")).is_file(),
        "the batch commits before it trashed the file"
    );
    let terminated: bool = observer
        .query_one("SELECT pg_terminate_backend($1)", &[&waiting.unwrap()])
        .unwrap()
        .get(0);
    assert!(terminated);
    let status = sweep.exit_status(Duration::from_secs(30));
    let log = sweep.log();
    assert!(
        !status.success(),
        "the sweep hid its lost connection:\n{log}"
    );
    assert!(
        log.contains("the connection failed while the batch committed"),
        "{log}"
    );

    // The commit record was durable: the deletion is recorded, and the file
    // is where the record says.
    let (state, outcome, attempts, bytes) = tombstone(&mut observer);
    assert_eq!(
        (state.as_str(), outcome.as_deref(), attempts, bytes),
        ("done", Some("trashed"), 1, Some(SIZE as i64)),
        "{log}"
    );
    assert!(
        !env.path(IMAGE).exists(),
        "the file came back although its deletion is recorded:\n{log}"
    );
    assert!(env.path(&format!(".filegc-trash/{IMAGE}")).is_file());
}

#[test]
fn a_batch_the_database_refused_to_commit_puts_its_files_back_for_a_later_sweep() {
    let mut env = scheduled_on(filegc_tests::cluster());
    env.client
        .batch_execute(
            "CREATE FUNCTION public.refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 RAISE EXCEPTION 'the test refuses this commit';
             END $$;
             CREATE CONSTRAINT TRIGGER completion_is_refused
                 AFTER UPDATE ON filegc.tombstones DEFERRABLE INITIALLY DEFERRED
                 FOR EACH ROW WHEN (NEW.state = 'done')
                 EXECUTE FUNCTION public.refuse_completion();",
        )
        .unwrap();
    let output = env.run(&["sweep"]);
    assert!(!output.status.success(), "{}", describe_output(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the test refuses this commit"),
        "{}",
        describe_output(&output)
    );
    assert!(
        env.path(IMAGE).is_file(),
        "the refused batch left its file in the trash:\n{}",
        describe_output(&output)
    );
    assert!(!env.path(&format!(".filegc-trash/{IMAGE}")).exists());
    let (state, _, attempts, _) = tombstone(&mut env.client);
    assert_eq!((state.as_str(), attempts), ("claimed", 1));

    // The lease runs out and the next sweep carries the deletion out.
    env.client
        .batch_execute(
            "DROP TRIGGER completion_is_refused ON filegc.tombstones;
             UPDATE filegc.tombstones SET lease_until = now() - interval '1 second';",
        )
        .unwrap();
    env.run_ok(&["sweep"]);
    assert_trashed_at_the_second_attempt(&mut env);
}

/// The deletion is recorded `trashed`, with the file's size, at its second
/// attempt, and the copy is in the trash.
fn assert_trashed_at_the_second_attempt(env: &mut TestEnv) {
    let (state, outcome, attempts, bytes) = tombstone(&mut env.client);
    assert_eq!(
        (state.as_str(), outcome.as_deref(), attempts, bytes),
        ("done", Some("trashed"), 2, Some(SIZE as i64))
    );
    assert!(env.path(&format!(".filegc-trash/{IMAGE}")).is_file());
}

/// The state a lost batch leaves: the deletion claimed by a sweeper whose
/// lease ran out, and its file moved into the trash without a record.
fn trashed_without_a_record() -> TestEnv {
    let mut env = scheduled_on(filegc_tests::cluster());
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.claim('a_sweeper_that_lost_its_batch', 10)"),
        1
    );
    std::fs::create_dir_all(env.path(".filegc-trash")).unwrap();
    std::fs::rename(env.path(IMAGE), env.path(&format!(".filegc-trash/{IMAGE}"))).unwrap();
    env.client
        .batch_execute("UPDATE filegc.tombstones SET lease_until = now() - interval '1 second'")
        .unwrap();
    env
}

#[test]
fn a_retried_deletion_records_the_copy_a_lost_batch_left_in_the_trash() {
    let mut env = trashed_without_a_record();
    env.run_ok(&["sweep"]);
    assert_trashed_at_the_second_attempt(&mut env);
    // Recorded, the copy is the trash's to purge and to restore.
    assert!(env.query_i64(&format!("SELECT filegc.restore('{IMAGE}')::int::bigint")) == 1);
    env.run_ok(&["sweep"]);
    assert!(
        env.path(IMAGE).is_file(),
        "the recorded copy was not restored"
    );
}

#[test]
fn a_retried_deletion_without_trash_deletes_the_copy_a_lost_batch_left_in_the_trash() {
    let mut env = trashed_without_a_record();
    env.run_ok(&["sweep", "--no-trash"]);
    let (state, outcome, attempts, bytes) = tombstone(&mut env.client);
    assert_eq!(
        (state.as_str(), outcome.as_deref(), attempts, bytes),
        ("done", Some("deleted"), 2, Some(SIZE as i64))
    );
    assert!(!env.path(&format!(".filegc-trash/{IMAGE}")).exists());
    assert!(!env.path(IMAGE).exists());
}

#[test]
fn a_retried_deletion_leaves_alone_the_copy_another_deletion_of_the_path_recorded() {
    let mut env = scheduled_on(filegc_tests::cluster());
    env.run_ok(&["sweep"]);
    assert_eq!(env.outcome(IMAGE).as_deref(), Some("trashed"));
    // A second deletion of the same path, claimed once by a sweeper that
    // lost its batch; the file is still gone, its copy in the trash is the
    // first deletion's.
    assert_eq!(
        env.query_i64(&format!(
            "SELECT filegc.schedule_delete(ARRAY['{IMAGE}'], force => true)::bigint"
        )),
        1
    );
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.claim('a_sweeper_that_lost_its_batch', 10)"),
        1
    );
    env.client
        .batch_execute("UPDATE filegc.tombstones SET lease_until = now() - interval '1 second'")
        .unwrap();
    env.run_ok(&["sweep", "--no-trash"]);
    assert_eq!(env.outcome(IMAGE).as_deref(), Some("already_gone"));
    assert!(
        env.path(&format!(".filegc-trash/{IMAGE}")).is_file(),
        "the retry purged the copy another deletion recorded"
    );
    assert_eq!(
        env.query_i64(&format!("SELECT filegc.restore('{IMAGE}')::int::bigint")),
        1
    );
    env.run_ok(&["sweep"]);
    assert!(
        env.path(IMAGE).is_file(),
        "the first deletion's copy was not restored"
    );
}
