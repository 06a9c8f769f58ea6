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
