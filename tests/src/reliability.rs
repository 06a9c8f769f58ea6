//! Helpers of the reliability suite (`tests/tests/reliability_*.rs`): filegc's
//! queue and final check as the sweeper sees them, the path rules in Rust,
//! the switch to the long forms, and a random source a failure can replay.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use postgres::Client;

/// How many deletions of `path` `filegc.pending` shows (those the triggers
/// noted moments ago included).
pub fn pending_deletions(client: &mut Client, path: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM filegc.pending WHERE path = $1",
            &[&path],
        )
        .expect("reading filegc.pending")
        .get(0)
}

/// The path rules the extension and the sweeper share, for checks at the Rust level.
pub use filegc_path_rules as path_rules;

/// Whether the long forms of the reliability scenarios run: `FILEGC_SOAK=1`, as `make soak` sets it.
pub fn soak() -> bool {
    std::env::var("FILEGC_SOAK").is_ok_and(|value| value == "1")
}

/// A small pseudo-random generator (xorshift64*): random enough for
/// choosing operations and kill points, and replayable from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `FILEGC_SEED`, or else from the clock; prints
    /// the seed so that a failing run can be replayed.
    pub fn seeded(label: &str) -> Rng {
        let seed = std::env::var("FILEGC_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{label}: FILEGC_SEED={seed}");
        Rng::new(seed)
    }

    /// A generator with this seed.
    pub fn new(seed: u64) -> Rng {
        // xorshift never leaves 0: any other starting state will do.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Whether a process with this id exists.
pub fn pid_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Every tombstone of the database as (path, state, outcome, restored), in id order.
pub fn tombstones(client: &mut Client) -> Vec<Tombstone> {
    client
        .query(
            "SELECT path, state, outcome, restored_at IS NOT NULL, attempts FROM filegc.tombstones ORDER BY id",
            &[],
        )
        .expect("reading filegc.tombstones")
        .iter()
        .map(|row| Tombstone {
            path: row.get(0),
            state: row.get(1),
            outcome: row.get(2),
            restored: row.get(3),
            attempts: row.get(4),
        })
        .collect()
}

/// One row of `filegc.tombstones`, as the reliability checks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The path relative to the volume root.
    pub path: String,
    /// pending, claimed, done, cancelled or failed.
    pub state: String,
    /// The outcome of a done tombstone.
    pub outcome: Option<String>,
    /// Whether the trashed file was brought back.
    pub restored: bool,
    /// How many times a sweeper claimed it.
    pub attempts: i32,
}

impl Tombstone {
    /// Whether this tombstone took the file off the disk and it stayed off:
    /// outcome `trashed` or `deleted`, not restored since.
    pub fn removed_file(&self) -> bool {
        matches!(self.outcome.as_deref(), Some("trashed" | "deleted")) && !self.restored
    }
}

/// The regular files directly under `dir`, by name (the trash folder is not one).
pub fn files_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("listing a folder")
        .map(|entry| entry.expect("a folder entry"))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.file_name().into_string().expect("a UTF-8 name"))
        .collect()
}

/// What the sweeper's final check says of `path` at this moment: a deletion
/// of it, claimed by the worker `final-check`, is checked by
/// `filegc.check_before_delete` in a transaction that is then rolled back,
/// and cancelled afterwards (an open deletion of the path is cancelled
/// first). `Err` carries the message of a check that refused to run.
pub fn final_verdict(client: &mut Client, path: &str) -> Result<String, String> {
    client
        .execute(
            "UPDATE filegc.tombstones SET state = 'cancelled', finished_at = now() \
              WHERE path = $1 AND state IN ('pending', 'claimed')",
            &[&path],
        )
        .expect("cancelling open deletions");
    let id: i64 = client
        .query_one(
            "INSERT INTO filegc.tombstones (path, reason, due_at, state, claimed_by, lease_until, attempts) \
             VALUES ($1, 'manual', now(), 'claimed', 'final-check', now() + interval '1 hour', 1) RETURNING id",
            &[&path],
        )
        .expect("a claimed deletion")
        .get(0);
    let mut transaction = client.transaction().expect("a transaction");
    let verdict = transaction
        .query_one(
            "SELECT verdict FROM filegc.check_before_delete('final-check', ARRAY[$1::bigint])",
            &[&id],
        )
        .map(|row| row.get::<_, String>(0))
        .map_err(|error| said(&error));
    transaction.rollback().expect("rolling back the check");
    client
        .execute(
            "UPDATE filegc.tombstones SET state = 'cancelled', finished_at = now() WHERE id = $1",
            &[&id],
        )
        .expect("cancelling the checked deletion");
    verdict
}

/// The message (and hint) of a statement that must fail.
pub fn error_of(client: &mut Client, sql: &str) -> String {
    let error = client
        .batch_execute(sql)
        .expect_err(&format!("{sql} must fail"));
    said(&error)
}

/// What a failed statement told its client: message, detail and hint.
fn said(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} {} {}",
            db.message(),
            db.detail().unwrap_or_default(),
            db.hint().unwrap_or_default()
        ),
        None => error.to_string(),
    }
}

/// The files of the crash scenarios (`scheduled_name(0..files)`): their
/// rows inserted and deleted, so that the triggers scheduled them.
pub fn scheduled_name(i: usize) -> String {
    format!("c_{i:05}.jpg")
}

/// The referenced canaries of the crash scenarios.
pub fn canary_name(i: usize) -> String {
    format!("canary_{i:02}.jpg")
}

/// The queue of the crash scenarios: `files` deletions scheduled by an
/// `INSERT` and a `DELETE` of their rows, and `canaries` referenced files
/// with tombstones a superuser wrote past the triggers; all pending, with a
/// lease of a second so that a killed sweeper's batch comes back soon.
pub fn schedule_crash_queue(client: &mut Client, files: usize, canaries: usize) {
    let prefix = crate::fixtures::PREFIX;
    // The canaries' rows go into the other table, which the mass DELETE leaves alone.
    client
        .execute(
            "INSERT INTO generations (user_id, output_image_path)
             SELECT 1, $1 || 'canary_' || lpad(i::text, 2, '0') || '.jpg' FROM generate_series(0, $2 - 1) AS i",
            &[&prefix, &(canaries as i32)],
        )
        .expect("the canaries' rows");
    client
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path)
             SELECT 1, $1 || 'c_' || lpad(i::text, 5, '0') || '.jpg' FROM generate_series(0, $2 - 1) AS i",
            &[&prefix, &(files as i32)],
        )
        .expect("the files' rows");
    client
        .batch_execute("DELETE FROM facial_evaluations")
        .expect("deleting the files' rows");
    client
        .execute(
            "INSERT INTO filegc.tombstones (path, reason, due_at)
             SELECT 'canary_' || lpad(i::text, 2, '0') || '.jpg', 'manual', now() FROM generate_series(0, $1 - 1) AS i",
            &[&(canaries as i32)],
        )
        .expect("tombstones for the canaries");
    client
        .batch_execute(
            "SELECT filegc.process_notes();
             UPDATE filegc.settings SET value = '1 second' WHERE name = 'lease';
             UPDATE filegc.settings SET value = '1000' WHERE name = 'max_attempts';",
        )
        .expect("the notes processed, the lease shortened");
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM filegc.tombstones WHERE state = 'pending'",
            &[],
        )
        .expect("counting the pending tombstones")
        .get(0);
    assert_eq!(pending, (files + canaries) as i64);
}

/// Whether every claim's lease has lapsed within 10 s, so that a new sweeper
/// can take over what a killed one held.
pub fn leases_lapse(client: &mut Client) -> bool {
    crate::eventually(std::time::Duration::from_secs(10), || {
        client
            .query_one(
                "SELECT count(*) FROM filegc.tombstones WHERE state = 'claimed' AND lease_until >= now()",
                &[],
            )
            .expect("reading the leases")
            .get::<_, i64>(0)
            == 0
    })
}

/// Whether a sweeper holds a batch now (a claim whose lease runs).
pub fn a_batch_is_claimed(client: &mut Client) -> bool {
    client
        .query_one(
            "SELECT count(*) FROM filegc.tombstones WHERE state = 'claimed' AND lease_until > now()",
            &[],
        )
        .expect("reading the claims")
        .get::<_, i64>(0)
        > 0
}

/// What [`kill_sweeps`] does after each kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterKill {
    /// Starts the next sweeper at once: it finds what the killed one left unclaimed.
    StartAtOnce,
    /// Waits for the killed sweeper's lease to lapse, so that the next one takes its batch over.
    WaitForItsLease,
}

/// Starts a sweeper `kills` times and kills it (SIGKILL) at a random point
/// of its work, once it holds a batch, at most `max_delay_ms` later; a
/// sweeper must not fail on its own. Returns how many kills landed while it ran.
pub fn kill_sweeps(
    start: impl Fn() -> crate::sweeper::Running,
    kills: usize,
    rng: &mut Rng,
    max_delay_ms: usize,
    after: AfterKill,
    watcher: &mut Client,
) -> usize {
    let mut killed_while_working = 0;
    for _ in 0..kills {
        let mut sweep = start();
        // Waiting a fixed time instead let a fast sweeper finish before any kill.
        crate::eventually(std::time::Duration::from_secs(10), || {
            !sweep.is_running() || a_batch_is_claimed(watcher)
        });
        std::thread::sleep(std::time::Duration::from_millis(
            rng.below(max_delay_ms) as u64
        ));
        if sweep.is_running() {
            sweep.signal(libc::SIGKILL);
            killed_while_working += 1;
        }
        let status = sweep.exit_status(std::time::Duration::from_secs(30));
        assert!(
            status.success() || status.code().is_none(),
            "a sweep failed on its own: {status}\n{}",
            sweep.log()
        );
        if after == AfterKill::WaitForItsLease {
            assert!(
                leases_lapse(watcher),
                "leases of a second are still running after 10 s"
            );
        }
    }
    killed_while_working
}
