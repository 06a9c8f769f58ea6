//! The old quarterly routine as one SQL statement: what tracking costs a
//! bulk INSERT and a bulk DELETE of `--bulk-rows` rows with two images each,
//! untracked, tracked by the extension, kept by the PL/pgSQL peer, and
//! tracked by the portable engine, each in a fresh database set up as the
//! trigger case sets it up (tests/src/bin/bench/trigger.rs).

use std::time::Duration;

use crate::measure::{each_run, median, seconds, time};
use crate::report::{ratio, Row, Verdict};
use crate::setup::Bench;
use crate::trigger::{Variant, BACKLOG, VARIANTS};

/// The target: the DELETE at least this many times faster than under the peer.
const MIN_SPEEDUP_OVER_PEER: f64 = 3.0;

/// The rows, 100 days old, each with two images.
const INSERT: &str = "
    INSERT INTO facial_evaluations (id, user_id, image_path, secondary_image_path, created_at)
    SELECT id, id / 20 + 1,
           format('/app/facial_evaluations/user_%s_%s.jpg', id / 20 + 1, 1700000000 + id),
           format('/app/facial_evaluations/user_%s_%s_2.jpg', id / 20 + 1, 1700000000 + id),
           now() - interval '100 days'
      FROM generate_series(1, $1::bigint) AS id";

/// The quarterly routine's review, as the old tool's guide has it.
const DELETE: &str = "DELETE FROM facial_evaluations WHERE created_at < now() - interval '90 days'";

pub fn run(bench: &mut Bench) {
    let rows = bench.options.bulk_rows;
    let mut inserts: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
    let mut deletes: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..bench.options.runs {
        for (index, variant) in VARIANTS.into_iter().enumerate() {
            let db = variant.database();
            let mut client = db.connect();
            variant.add_backlog(&mut client);
            client.batch_execute("VACUUM ANALYZE").expect("VACUUM");
            client.batch_execute("CHECKPOINT").expect("CHECKPOINT");
            bench.quiet();
            inserts[index].push(time(|| {
                client
                    .execute(INSERT, &[&(rows as i64)])
                    .expect("the bulk INSERT");
            }));
            client.batch_execute("VACUUM ANALYZE").expect("VACUUM");
            client.batch_execute("CHECKPOINT").expect("CHECKPOINT");
            bench.quiet();
            let mut deleted = 0;
            deletes[index].push(time(|| {
                deleted = client.execute(DELETE, &[]).expect("the bulk DELETE");
            }));
            assert_eq!(
                deleted,
                rows,
                "bench: {}: the DELETE missed rows",
                variant.label()
            );
            check_scheduled(&mut client, variant, rows);
            eprintln!(
                "bench: bulk, {}: INSERT {}, DELETE {}",
                variant.label(),
                seconds(*inserts[index].last().expect("a run")),
                seconds(*deletes[index].last().expect("a run"))
            );
        }
    }
    let secs = |runs: &Vec<Duration>| median(runs).as_secs_f64();
    let [insert, delete] =
        [&inserts, &deletes].map(|runs| runs.iter().map(secs).collect::<Vec<f64>>());
    let (extension, peer) = (1, 2);
    let statement = |what: &str| format!("bulk {what} of {rows} rows, two images each");
    // Times, not rates: the peer's time over filegc's says how much faster filegc is.
    bench.report.row(Row {
        case: statement("DELETE"),
        filegc: format!("{:.2} s", delete[extension]),
        baseline: format!("{:.2} s (peer)", delete[peer]),
        ratio: ratio(delete[peer], delete[extension]),
        target: format!("at least {MIN_SPEEDUP_OVER_PEER}x faster than the peer"),
        verdict: Verdict::of(delete[peer] / delete[extension] >= MIN_SPEEDUP_OVER_PEER),
    });
    bench.report.row(Row {
        case: statement("INSERT"),
        filegc: format!("{:.2} s", insert[extension]),
        baseline: format!("{:.2} s (peer)", insert[peer]),
        ratio: ratio(insert[peer], insert[extension]),
        target: "none; reported".to_owned(),
        verdict: Verdict::Reported,
    });
    for (index, variant) in VARIANTS.iter().enumerate() {
        bench.report.detail(format!(
            "bulk, {}, each run: INSERT {} s, DELETE {} s",
            variant.label(),
            each_run(&inserts[index]),
            each_run(&deletes[index])
        ));
    }
}

/// Insists that every deleted image was scheduled.
fn check_scheduled(client: &mut postgres::Client, variant: Variant, rows: u64) {
    if let Some(scheduled) = variant.scheduled_deletions(client) {
        assert_eq!(
            scheduled - BACKLOG,
            2 * rows as i64,
            "bench: {}: not every deleted image was scheduled",
            variant.label()
        );
    }
}
