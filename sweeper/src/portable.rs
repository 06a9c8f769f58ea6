//! The portable install: the same schema `filegc` as the extension, for a
//! PostgreSQL that cannot load it (most managed services). Only the path
//! rules and the triggers differ (PL/pgSQL instead of Rust); every other
//! statement comes from the files the extension includes, in the same order.
//!
//! A portable install records its version in `filegc.portable_install`. A
//! newer sweeper upgrades it in place by running the releases after that
//! version, exactly the upgrade scripts `ALTER EXTENSION filegc UPDATE` runs,
//! so tombstones, settings and history stay where they are.

use crate::config::{Engine, PortableScript};
use crate::db::DbError;

/// The version of filegc this sweeper installs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The current definition of every object, in the order a new install
/// needs them: the files the extension includes, with the portable path
/// rules and triggers in place of the Rust ones.
const CURRENT: &[(&str, &str)] = &[
    (
        "portable/ref_path.sql",
        include_str!("../../sql/portable/ref_path.sql"),
    ),
    ("paths.sql", include_str!("../../sql/paths.sql")),
    ("schema.sql", include_str!("../../sql/schema.sql")),
    ("settings.sql", include_str!("../../sql/settings.sql")),
    ("references.sql", include_str!("../../sql/references.sql")),
    ("notes.sql", include_str!("../../sql/notes.sql")),
    (
        "portable/triggers.sql",
        include_str!("../../sql/portable/triggers.sql"),
    ),
    ("tracking.sql", include_str!("../../sql/tracking.sql")),
    ("queue.sql", include_str!("../../sql/queue.sql")),
    ("trash.sql", include_str!("../../sql/trash.sql")),
    ("inventory.sql", include_str!("../../sql/inventory.sql")),
    ("reports.sql", include_str!("../../sql/reports.sql")),
    ("cleanup.sql", include_str!("../../sql/cleanup.sql")),
    ("install.sql", include_str!("../../sql/install.sql")),
    ("alerts.sql", include_str!("../../sql/alerts.sql")),
    ("grants.sql", include_str!("../../sql/grants.sql")),
    (
        "event_triggers.sql",
        include_str!("../../sql/event_triggers.sql"),
    ),
];

/// The first release with the portable engine, exactly as it installed:
/// every upgrade starts from there.
const FIRST_RELEASE: &str = "0.1.0";
const FIRST_RELEASE_SCRIPT: &str = include_str!("../../sql/archive/portable--0.1.0.sql");

/// The statements that take an install from the release before to `version`.
struct Upgrade {
    version: &'static str,
    parts: &'static [(&'static str, &'static str)],
}

/// Every upgrade in order: the extension's upgrade script, after the
/// portable engine's own changes (which go in a file of their own under
/// sql/portable/).
const UPGRADES: &[Upgrade] = &[Upgrade {
    version: "0.2.0",
    parts: &[
        (
            "portable/filegc--0.1.0--0.2.0.sql",
            include_str!("../../sql/portable/filegc--0.1.0--0.2.0.sql"),
        ),
        (
            "filegc--0.1.0--0.2.0.sql",
            include_str!("../../sql/filegc--0.1.0--0.2.0.sql"),
        ),
    ],
}];

/// A version this sweeper has no script for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownRelease {
    /// A version that never was a release, or one too old for this sweeper.
    #[error("filegc {0} is not a release this sweeper knows (it knows {known})", known = known_versions())]
    Unknown(String),
    /// A version later than this sweeper's.
    #[error("filegc {0} is newer than this sweeper's {VERSION}: use a newer filegc binary")]
    Newer(String),
}

fn known_versions() -> String {
    versions().collect::<Vec<_>>().join(", ")
}

/// Every release, oldest first.
fn versions() -> impl Iterator<Item = &'static str> {
    std::iter::once(FIRST_RELEASE).chain(UPGRADES.iter().map(|upgrade| upgrade.version))
}

/// The numbers of a dotted version, which order releases.
fn numbers_of(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|number| number.parse().unwrap_or(0))
        .collect()
}

/// How many upgrades lie between the first release and `version`.
fn upgrades_to(version: &str) -> Option<usize> {
    versions().position(|known| known == version)
}

fn append_parts(script: &mut String, parts: &[(&str, &str)]) {
    for (name, text) in parts {
        script.push_str(&format!("\n-- sql/{name}\n{text}\n"));
    }
}

fn append_upgrades(script: &mut String, upgrades: &[Upgrade]) {
    for upgrade in upgrades {
        append_parts(script, upgrade.parts);
    }
}

/// The script `filegc install-sql` prints and `--apply` runs in one
/// transaction: the current definition of every object.
pub fn install_script() -> String {
    let mut script = format!(
        "-- filegc {VERSION}, portable install: run it as the owner of the application's tables.\n\
         CREATE SCHEMA filegc;\n"
    );
    append_parts(&mut script, CURRENT);
    script.push_str(&format!(
        "\n-- The portable install records its version; filegc.version() reads it.\n\
         CREATE TABLE filegc.portable_install (version text NOT NULL, installed_at timestamptz NOT NULL DEFAULT now());\n\
         COMMENT ON TABLE filegc.portable_install IS 'Internal: the version of this portable install; read filegc.version()';\n\
         INSERT INTO filegc.portable_install (version) VALUES ('{VERSION}');\n"
    ));
    script
}

/// A new portable install of one release, as that release would have
/// installed it; upgrading from an older install starts from here.
pub fn install_script_of(version: &str) -> Result<String, UnknownRelease> {
    if version == VERSION {
        return Ok(install_script());
    }
    let upgrades =
        upgrades_to(version).ok_or_else(|| UnknownRelease::Unknown(version.to_owned()))?;
    let mut script = FIRST_RELEASE_SCRIPT.to_owned();
    if upgrades > 0 {
        append_upgrades(&mut script, &UPGRADES[..upgrades]);
        script.push_str(&format!(
            "\nUPDATE filegc.portable_install SET version = '{version}', installed_at = now();\n"
        ));
    }
    Ok(script)
}

/// The script that takes a portable install of `from` to this sweeper's
/// version in place: the releases after `from`, then the new version number.
pub fn upgrade_script(from: &str) -> Result<String, UnknownRelease> {
    let installed = upgrades_to(from).ok_or_else(|| {
        if numbers_of(from) > numbers_of(VERSION) {
            UnknownRelease::Newer(from.to_owned())
        } else {
            UnknownRelease::Unknown(from.to_owned())
        }
    })?;
    let current = upgrades_to(VERSION).expect("the sweeper's own version is a release");
    let mut script = format!(
        "-- filegc portable install: upgrade from {from} to {VERSION}, in place; run it as the owner of the application's tables.\n\
         -- Fails at once if the installed version is not {from}.\n\
         DO $$ BEGIN\n\
             IF (SELECT version FROM filegc.portable_install) IS DISTINCT FROM '{from}' THEN\n\
                 RAISE EXCEPTION 'filegc: this script upgrades a portable install of {from}, and this database has %', (SELECT version FROM filegc.portable_install);\n\
             END IF;\n\
         END $$;\n"
    );
    append_upgrades(&mut script, &UPGRADES[installed..current]);
    script.push_str(&format!(
        "\nUPDATE filegc.portable_install SET version = '{VERSION}', installed_at = now();\n"
    ));
    Ok(script)
}

/// The script `filegc uninstall-sql` prints: the schema with everything in
/// it, including the triggers and indexes filegc added to tracked tables.
pub const UNINSTALL_SCRIPT: &str = "\
-- Removes the portable filegc install, with its triggers and indexes on the application's tables.
DROP EVENT TRIGGER IF EXISTS filegc_forget_dropped;
DROP EVENT TRIGGER IF EXISTS filegc_sync_tracking;
DROP SCHEMA filegc CASCADE;
";

/// The tables whose rows are the operator's data, kept across a change of
/// engine. Both engines build them with the same statements, so their
/// columns line up.
const KEPT_TABLES: &[&str] = &[
    "setting_overrides",
    "tombstones",
    "invalid_values",
    "notes",
    "runs",
    "inventory",
    "volume_reports",
    "alert_delivery_log",
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
    for sequence in [
        "tombstones_id_seq",
        "runs_id_seq",
        "volume_reports_id_seq",
        "alert_delivery_log_id_seq",
    ] {
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
    /// A schema `filegc` that holds no install, as `DROP EXTENSION` leaves it.
    EmptySchema,
}

/// Finds out which filegc, if any, a database has. It does not call
/// `filegc.version()`, which older installs may lack.
pub async fn installed(client: &tokio_postgres::Client) -> Result<Installed, DbError> {
    let row = client
        .query_one(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'filegc'),
                    EXISTS (SELECT FROM pg_namespace WHERE nspname = 'filegc'),
                    to_regclass('filegc.portable_install') IS NOT NULL",
            &[],
        )
        .await?;
    if let Some(version) = row.get::<_, Option<String>>(0) {
        return Ok(Installed::Extension(version));
    }
    if row.get::<_, bool>(2) {
        let version = client
            .query_one("SELECT version FROM filegc.portable_install", &[])
            .await?
            .get(0);
        return Ok(Installed::Portable(version));
    }
    Ok(if row.get::<_, bool>(1) {
        Installed::EmptySchema
    } else {
        Installed::Nothing
    })
}

/// What `--apply` does, given what the database has.
#[derive(Debug, PartialEq)]
pub enum PortablePlan {
    /// Run this script in one transaction, then say what was done.
    Run {
        /// The script.
        script: String,
        /// What to say once it is committed.
        done: String,
    },
    /// Nothing to run; says why.
    NothingToDo(String),
    /// The database holds what the script must not touch; says what, and the way out.
    Refuse(String),
}

/// The plan of `--apply` for `script`, given what the database has installed.
pub fn portable_plan(script: PortableScript, installed: &Installed) -> PortablePlan {
    let run = |script: String, done: String| PortablePlan::Run { script, done };
    match (script, installed) {
        (_, Installed::EmptySchema) => PortablePlan::Refuse(
            "this database has a schema filegc without filegc in it (DROP EXTENSION leaves the schema behind): \
             if it holds nothing you need, run DROP SCHEMA filegc CASCADE and try again"
                .into(),
        ),
        (PortableScript::Switch(Engine::Portable), Installed::Extension(_)) => run(
            switch_script(Engine::Portable),
            "filegc now runs as the portable install, with its data kept".into(),
        ),
        (PortableScript::Switch(Engine::Extension), Installed::Portable(version)) if version == VERSION => run(
            switch_script(Engine::Extension),
            "filegc now runs as the extension, with its data kept".into(),
        ),
        (PortableScript::Switch(Engine::Extension), Installed::Portable(version)) => PortablePlan::Refuse(format!(
            "the portable install is at {version}: upgrade it first with `filegc install-sql --apply`, then switch"
        )),
        (PortableScript::Switch(_), Installed::Nothing) => PortablePlan::Refuse(
            "filegc is not installed in this database: there is nothing to move".into(),
        ),
        (PortableScript::Switch(_), _) => {
            PortablePlan::NothingToDo("filegc already runs on that engine here; nothing to do".into())
        }
        (_, Installed::Extension(version)) => PortablePlan::Refuse(format!(
            "the filegc extension {version} is installed in this database; the portable install is for databases that cannot load it \
             (upgrade the extension with ALTER EXTENSION filegc UPDATE, or move with `filegc switch-engine --to portable`)"
        )),
        (PortableScript::Install, Installed::Nothing) => run(
            install_script(),
            format!("installed filegc {} (portable)", VERSION),
        ),
        (PortableScript::Install, Installed::Portable(version)) if version == VERSION => {
            PortablePlan::NothingToDo(format!("filegc {version} (portable) is installed already; nothing to do"))
        }
        (PortableScript::Install, Installed::Portable(version)) => match upgrade_script(version) {
            Ok(script) => run(
                script,
                format!(
                    "upgraded the portable filegc from {version} to {}, with its data kept",
                    VERSION
                ),
            ),
            Err(why) => PortablePlan::Refuse(why.to_string()),
        },
        (PortableScript::Uninstall, Installed::Nothing) => {
            PortablePlan::NothingToDo("filegc is not installed in this database; nothing to do".into())
        }
        (PortableScript::Uninstall, Installed::Portable(_)) => run(
            UNINSTALL_SCRIPT.to_owned(),
            "removed the portable filegc install".into(),
        ),
    }
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
        for (name, _) in CURRENT {
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
        assert!(
            !script.contains("filegc--"),
            "a new install runs no upgrade script"
        );
        assert!(script.contains("INSERT INTO filegc.portable_install (version) VALUES ('0.2.0')"));
    }

    #[test]
    fn the_last_release_is_the_version_this_sweeper_installs() {
        assert_eq!(versions().last(), Some(VERSION));
    }

    #[test]
    fn an_upgrade_runs_only_the_releases_after_the_installed_one() {
        let script = upgrade_script("0.1.0").unwrap();
        assert!(script.contains("-- sql/filegc--0.1.0--0.2.0.sql\n"));
        assert!(
            !script.contains("-- sql/schema.sql\n"),
            "the first release is there already"
        );
        assert!(!script.contains("CREATE SCHEMA filegc;"));
        assert!(script.ends_with(&format!(
            "UPDATE filegc.portable_install SET version = '{VERSION}', installed_at = now();\n"
        )));

        let nothing_to_run = upgrade_script(VERSION).unwrap();
        assert!(!nothing_to_run.contains("-- sql/"));
    }

    #[test]
    fn an_older_release_installs_without_the_later_scripts() {
        let script = install_script_of("0.1.0").unwrap();
        assert_eq!(
            script, FIRST_RELEASE_SCRIPT,
            "the first release as it installed"
        );
        assert!(script.contains("-- sql/references.sql\n"));
        assert!(!script.contains("-- sql/filegc--0.1.0--0.2.0.sql\n"));
        assert!(script.contains("INSERT INTO filegc.portable_install (version) VALUES ('0.1.0')"));
    }

    #[test]
    fn versions_without_a_script_are_refused_with_the_reason() {
        assert_eq!(
            upgrade_script("0.0.9"),
            Err(UnknownRelease::Unknown("0.0.9".into()))
        );
        assert!(install_script_of("9.9.9").is_err());
        assert_eq!(
            upgrade_script("0.10.0"),
            Err(UnknownRelease::Newer("0.10.0".into())),
            "versions order by number, not by text"
        );
        let unknown = UnknownRelease::Unknown("0.0.9".into()).to_string();
        assert!(unknown.contains("0.1.0, 0.2.0"), "{unknown}");
    }

    #[test]
    fn an_older_portable_install_is_upgraded_and_a_newer_one_refused() {
        let PortablePlan::Run { script, done } = portable_plan(
            PortableScript::Install,
            &Installed::Portable("0.1.0".into()),
        ) else {
            panic!("an older portable install must be upgraded");
        };
        assert_eq!(script, upgrade_script("0.1.0").unwrap());
        assert!(done.contains("from 0.1.0"), "{done}");

        let PortablePlan::Refuse(why) = portable_plan(
            PortableScript::Install,
            &Installed::Portable("9.0.0".into()),
        ) else {
            panic!("a newer install must be left alone");
        };
        assert!(why.contains("newer"), "{why}");
    }

    #[test]
    fn nothing_is_installed_over_the_extension_or_a_leftover_schema() {
        for installed in [Installed::Extension("0.2.0".into()), Installed::EmptySchema] {
            for script in [PortableScript::Install, PortableScript::Uninstall] {
                assert!(
                    matches!(portable_plan(script, &installed), PortablePlan::Refuse(_)),
                    "{script:?} over {installed:?}"
                );
            }
        }
    }

    #[test]
    fn a_switch_to_the_extension_waits_for_the_portable_upgrade() {
        let plan = portable_plan(
            PortableScript::Switch(Engine::Extension),
            &Installed::Portable("0.1.0".into()),
        );
        assert!(
            matches!(&plan, PortablePlan::Refuse(why) if why.contains("install-sql --apply")),
            "{plan:?}"
        );
    }
}
