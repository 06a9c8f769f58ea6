//! The Railway images cannot be built here (no container engine), so their
//! steps live in scripts that `make install` and `make release` run (and the
//! suite with them). These checks keep the Dockerfiles pointing at those
//! scripts, at a PostgreSQL the extension builds for, and at the Rust the
//! workspace needs, and the application's image at the sweeper's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repository().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The images that build something, each with a script.
const DOCKERFILES: [&str; 2] = [
    "deploy/railway/postgres.Dockerfile",
    "deploy/railway/sweeper.Dockerfile",
];

const APP_DOCKERFILE: &str = "deploy/railway/app.Dockerfile";

/// The `scripts/...` paths a text runs.
fn scripts_in(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '"')
        .filter(|word| word.starts_with("scripts/") && word.ends_with(".sh"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_image_runs_the_script_the_makefile_runs() {
    let makefile = read("Makefile");
    for (dockerfile, script) in [
        (DOCKERFILES[0], "scripts/install-extension.sh"),
        (DOCKERFILES[1], "scripts/release.sh"),
    ] {
        assert!(
            scripts_in(&read(dockerfile)).contains(&script.to_owned()),
            "{dockerfile} must build with {script}"
        );
        assert!(
            scripts_in(&makefile).contains(&script.to_owned()),
            "the Makefile must run {script} too, so that make test and make demo exercise it"
        );
    }
}

#[test]
fn every_script_an_image_runs_exists_and_is_executable() {
    for dockerfile in DOCKERFILES {
        let scripts = scripts_in(&read(dockerfile));
        assert!(!scripts.is_empty(), "{dockerfile} runs no script");
        for script in scripts {
            let mode = std::fs::metadata(repository().join(&script))
                .unwrap_or_else(|e| panic!("{dockerfile} runs {script}: {e}"))
                .permissions()
                .mode();
            assert!(mode & 0o111 != 0, "{script} is not executable");
        }
    }
}

#[test]
fn the_database_image_defaults_to_a_postgresql_the_extension_builds_for() {
    let dockerfile = read(DOCKERFILES[0]);
    let major = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("ARG PG_MAJOR="))
        .expect("ARG PG_MAJOR=<default>");
    assert_eq!(major, "16", "Railway's current default");
    assert!(
        read("extension/Cargo.toml").contains(&format!("pg{major} = [")),
        "extension/Cargo.toml has no feature pg{major}"
    );
}

#[test]
fn the_images_build_with_the_rust_the_workspace_asks_for() {
    let workspace = read("Cargo.toml");
    let rust = workspace
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml")
        .trim_matches('"');
    assert!(read(DOCKERFILES[0]).contains(&format!("--default-toolchain {rust}.")));
    assert!(read(DOCKERFILES[1]).contains(&format!("FROM rust:{rust}-")));
}

#[test]
fn the_application_image_takes_the_binary_from_the_sweeper_image() {
    let app = read(APP_DOCKERFILE);
    let sweeper = read(DOCKERFILES[1]);
    assert!(
        sweeper.contains("COPY --from=build /out/filegc /filegc"),
        "the sweeper image holds the binary at /filegc"
    );
    assert!(
        app.contains("COPY --from=filegc /filegc /usr/local/bin/filegc"),
        "{APP_DOCKERFILE} copies the binary from the sweeper image"
    );
    assert!(
        app.contains(r#"ENTRYPOINT ["filegc", "run", "--"]"#),
        "{APP_DOCKERFILE} starts the application under filegc run"
    );
}
