//! The portable install: the same schema `filegc` as the extension, for a
//! PostgreSQL that cannot load it (most managed services). Only the path
//! rules and the triggers differ (PL/pgSQL instead of Rust); every other
//! statement comes from the files the extension includes, in the same order.

use crate::db::DbError;

/// The version of filegc this sweeper installs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The statements of the portable install, in order: the first release's
/// files, the portable engine, then every upgrade script.
const PARTS: &[(&str, &str)] = &[
    ("schema.sql", include_str!("../../sql/schema.sql")),
    (
        "portable/ref_path.sql",
        include_str!("../../sql/portable/ref_path.sql"),
    ),
    (
        "portable/triggers.sql",
        include_str!("../../sql/portable/triggers.sql"),
    ),
    ("references.sql", include_str!("../../sql/references.sql")),
    (
        "filegc--0.1.0--0.2.0.sql",
        include_str!("../../sql/filegc--0.1.0--0.2.0.sql"),
    ),
];

/// The script `filegc install-sql` prints and `--apply` runs in one transaction.
pub fn install_script() -> String {
    let mut script = format!(
        "-- filegc {VERSION}, portable install: run it as the owner of the application's tables.\n\
         CREATE SCHEMA filegc;\n"
    );
    for (name, text) in PARTS {
        script.push_str(&format!("\n-- sql/{name}\n{text}\n"));
    }
    script.push_str(&format!(
        "\n-- The portable install records its version; filegc.version() reads it.\n\
         CREATE TABLE filegc.portable_install (version text NOT NULL, installed_at timestamptz NOT NULL DEFAULT now());\n\
         INSERT INTO filegc.portable_install (version) VALUES ('{VERSION}');\n\
         -- Keeping filegc.tracked in step with DROP TABLE needs an event trigger, which needs a superuser.\n\
         DO $$ BEGIN\n\
             IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN\n\
                 CREATE EVENT TRIGGER filegc_forget_dropped ON sql_drop EXECUTE FUNCTION filegc.forget_dropped();\n\
             ELSE\n\
                 RAISE NOTICE 'filegc: not a superuser, so no event trigger: after DROP TABLE of a tracked table, run DELETE FROM filegc.tracked WHERE NOT EXISTS (SELECT FROM pg_class WHERE oid = table_name)';\n\
             END IF;\n\
         END $$;\n"
    ));
    script
}

/// The script `filegc uninstall-sql` prints: the schema with everything in
/// it, including the triggers and indexes filegc added to tracked tables.
pub const UNINSTALL_SCRIPT: &str = "\
-- Removes the portable filegc install, with its triggers and indexes on the application's tables.
DROP EVENT TRIGGER IF EXISTS filegc_forget_dropped;
DROP SCHEMA filegc CASCADE;
";

/// The two ways filegc can be installed; both provide the same schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `CREATE EXTENSION filegc`: Rust path rules and triggers.
    Extension,
    /// The portable install: PL/pgSQL path rules and triggers.
    Portable,
}

/// The tables whose rows are the operator's data, kept across a change of
/// engine. Both engines build them with the same statements, so their
/// columns line up.
const KEPT_TABLES: &[&str] = &[
    "setting_overrides",
    "tombstones",
    "invalid_refs",
    "runs",
    "inventory",
    "volume_reports",
];

/// The script `filegc switch-engine` runs in one transaction: it saves the
/// operator's data, removes one engine, installs the other, brings the data
/// back and tracks the same columns again (which rebuilds their indexes and
/// triggers, so it locks those tables while it runs).
pub fn switch_script(to: Engine) -> String {
    let mut script = String::from("CREATE SCHEMA filegc_switching;\n");
    for table in KEPT_TABLES.iter().chain(&["tracked"]) {
        script.push_str(&format!(
            "CREATE TABLE filegc_switching.{table} AS SELECT * FROM filegc.{table};\n"
        ));
    }
    match to {
        Engine::Extension => {
            script.push_str(UNINSTALL_SCRIPT);
            script.push_str("CREATE EXTENSION filegc;\n");
        }
        Engine::Portable => {
            // CREATE EXTENSION made the schema but does not own it.
            script.push_str("DROP EXTENSION filegc CASCADE;\nDROP SCHEMA filegc CASCADE;\n");
            script.push_str(&install_script());
        }
    }
    for table in KEPT_TABLES {
        script.push_str(&format!(
            "INSERT INTO filegc.{table} SELECT * FROM filegc_switching.{table};\n"
        ));
    }
    for sequence in ["tombstones_id_seq", "runs_id_seq", "volume_reports_id_seq"] {
        let table = sequence.trim_end_matches("_id_seq");
        script.push_str(&format!(
            "SELECT setval('filegc.{sequence}', (SELECT coalesce(max(id), 0) + 1 FROM filegc.{table}), false);\n"
        ));
    }
    script.push_str(
        "SELECT filegc.track(table_name, column_name, prefixes) FROM filegc_switching.tracked \
         WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = table_name);\n\
         DROP SCHEMA filegc_switching CASCADE;\n",
    );
    script
}

/// What the database already has, before a portable install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// No filegc at all.
    Nothing,
    /// The extension: the portable install is not for this database.
    Extension(String),
    /// A portable install of this version.
    Portable(String),
}

/// Finds out which filegc, if any, a database has.
pub async fn installed(client: &tokio_postgres::Client) -> Result<Installed, DbError> {
    let has_schema: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'filegc')",
            &[],
        )
        .await?
        .get(0);
    if !has_schema {
        return Ok(Installed::Nothing);
    }
    let row = client
        .query_one("SELECT engine, version FROM filegc.version()", &[])
        .await?;
    let version: String = row.get(1);
    Ok(match row.get::<_, &str>(0) {
        "extension" => Installed::Extension(version),
        _ => Installed::Portable(version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_keeps_every_table_of_the_operators_data() {
        for to in [Engine::Extension, Engine::Portable] {
            let script = switch_script(to);
            for table in KEPT_TABLES {
                assert!(
                    script.contains(&format!("INSERT INTO filegc.{table} SELECT")),
                    "{table}"
                );
            }
            assert!(script.contains("filegc.track(table_name, column_name, prefixes)"));
        }
    }

    #[test]
    fn the_script_has_every_part_once_and_nothing_only_the_extension_may_run() {
        let script = install_script();
        for (name, _) in PARTS {
            assert_eq!(
                script.matches(&format!("-- sql/{name}\n")).count(),
                1,
                "{name}"
            );
        }
        assert!(
            !script.contains("pg_extension_config_dump('"),
            "only CREATE EXTENSION may register dumps"
        );
        assert!(!script.contains("MODULE_PATHNAME"), "no C functions");
        assert!(script.contains("INSERT INTO filegc.portable_install (version) VALUES ('0.2.0')"));
    }
}
