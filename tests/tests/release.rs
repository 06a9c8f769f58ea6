//! The prebuilt release (`scripts/release.sh`, `make release`): a tarball of
//! the sweeper that runs on glibc 2.28 or newer, checked by its sum.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest glibc the release promises to run on (docs/railway.md).
const OLDEST_GLIBC: (u32, u32) = (2, 28);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The highest `GLIBC_x.y` symbol version the binary needs.
fn glibc_needed(binary: &Path) -> Option<(u32, u32)> {
    run(Command::new("objdump").arg("-T").arg(binary))
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(str::parse::<u32>);
            Some((parts.next()?.ok()?, parts.next().unwrap_or(Ok(0)).ok()?))
        })
        .max()
}

#[test]
fn the_release_runs_on_glibc_2_28_and_matches_its_sums() {
    let dist = tempfile::tempdir().unwrap();
    run(Command::new(repository().join("scripts/release.sh")).arg(dist.path()));

    run(Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(dist.path()));
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("filegc-{version}-x86_64-linux-gnu");
    let tarball = dist.path().join(format!("{name}.tar.gz"));
    let unpacked = tempfile::tempdir().unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(unpacked.path()));
    let binary = unpacked.path().join(&name).join("filegc");
    assert!(
        unpacked.path().join(&name).join("README.md").is_file(),
        "the tarball carries the README"
    );

    let needed = glibc_needed(&binary).expect("a binary linked against glibc");
    assert!(
        needed <= OLDEST_GLIBC,
        "the release needs glibc {}.{}, more than {}.{}",
        needed.0,
        needed.1,
        OLDEST_GLIBC.0,
        OLDEST_GLIBC.1
    );
    assert_eq!(
        run(Command::new(&binary).arg("--version")).trim(),
        format!("filegc {version}")
    );
}
