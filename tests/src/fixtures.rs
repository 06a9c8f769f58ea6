//! Starting points in the database: the application with its image columns
//! tracked, and an inventory as a scan reports it.

use crate::{cluster, TestDb};
use postgres::Client;

/// The prefix the application stores absolute paths with.
pub const PREFIX: &str = "/app/facial_evaluations/";

/// The four image columns of the application.
pub const APP_COLUMNS: [(&str, &str); 4] = [
    ("facial_evaluations", "image_path"),
    ("facial_evaluations", "secondary_image_path"),
    ("generations", "input_image_path"),
    ("generations", "output_image_path"),
];

impl TestDb {
    /// Creates the application's tables and tracks their image columns; returns a superuser connection.
    pub fn tracked_app(&self) -> Client {
        self.create_app_schema();
        let mut client = self.connect();
        for (table, column) in APP_COLUMNS {
            client
                .execute(
                    "SELECT filegc.track($1::text::regclass, $2::text::name, ARRAY[$3::text])",
                    &[&table, &column, &PREFIX],
                )
                .unwrap_or_else(|e| panic!("tracking {table}.{column}: {e}"));
        }
        client
    }
}

/// A database on the shared cluster with the application tracked, and a superuser connection to it.
pub fn tracked_database() -> (TestDb, Client) {
    let db = cluster().create_database();
    let admin = db.tracked_app();
    (db, admin)
}

/// A file as a scan reports it, with its ages in seconds before now.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// Path relative to the volume root.
    pub path: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// How long ago it was last modified.
    pub modified_secs_ago: i64,
    /// How long ago the sweeper first saw it (backdated after the scan).
    pub first_seen_secs_ago: i64,
}

impl ScannedFile {
    /// A file modified and first seen `secs_ago` seconds ago.
    pub fn aged(path: &str, size_bytes: i64, secs_ago: i64) -> Self {
        ScannedFile {
            path: path.to_owned(),
            size_bytes,
            modified_secs_ago: secs_ago,
            first_seen_secs_ago: secs_ago,
        }
    }
}

/// Reports a complete scan with these files, as the sweeper does (staging
/// rows, then `filegc.finish_scan`), then backdates each first sighting.
pub fn report_scan(client: &mut Client, files: &[ScannedFile]) {
    let scan: i64 = client
        .query_one("SELECT filegc.start_run('scan', 'test', '/volume')", &[])
        .unwrap()
        .get(0);
    for file in files {
        client
            .execute(
                "INSERT INTO filegc.inventory_staging (scan_id, path, size_bytes, modified_at)
                 VALUES ($1, $2, $3, now() - make_interval(secs => $4::bigint::double precision))",
                &[&scan, &file.path, &file.size_bytes, &file.modified_secs_ago],
            )
            .unwrap();
    }
    client
        .execute("SELECT filegc.finish_scan($1)", &[&scan])
        .unwrap();
    for file in files {
        client
            .execute(
                "UPDATE filegc.inventory SET first_seen_at = now() - make_interval(secs => $2::bigint::double precision)
                 WHERE path = $1",
                &[&file.path, &file.first_seen_secs_ago],
            )
            .unwrap();
    }
}

/// Reports the volume's capacity.
pub fn report_capacity(client: &mut Client, total_bytes: i64, used_bytes: i64) -> String {
    client
        .query_one(
            "SELECT filegc.report_volume('test', '/volume', $1::bigint, $2::bigint, $1::bigint - $2::bigint, 0, 0)",
            &[&total_bytes, &used_bytes],
        )
        .unwrap()
        .get(0)
}
