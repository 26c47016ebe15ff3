//! The service files in dist/: the unit verifies with systemd's own checker and `dist/install`
//! lays out what the unit and the flags file refer to.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_scx_brisk");
const INSTALLED_BIN: &str = "/usr/local/bin/scx_brisk";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scx_brisk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("dist/scx_brisk.service")).unwrap()
}

/// `systemd-analyze verify` on the unit, its binary at `exec`: exit status and what it said
/// about this unit (it also warns about unrelated system units on some machines).
fn verify(unit: &str, exec: &str) -> (bool, String) {
    let dir = scratch("unit");
    let path = dir.join("scx_brisk.service");
    std::fs::write(&path, unit.replace(INSTALLED_BIN, exec)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect(
            "systemd-analyze (Debian package systemd) is needed to check dist/scx_brisk.service",
        );
    let said: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("scx_brisk"))
        .map(str::to_string)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), said.join("\n"))
}

#[test]
fn the_unit_verifies_without_a_warning() {
    let unit = unit_text();
    assert!(unit.contains(&format!("ExecStart={INSTALLED_BIN} $SCX_BRISK_FLAGS")));
    assert!(unit.contains("Restart=on-failure"));
    let (ok, said) = verify(&unit, BIN);
    assert!(ok && said.is_empty(), "systemd-analyze verify: {said}");
    // The checker is strict enough to matter: an unknown key and a missing binary are caught.
    let (_, said) = verify(&format!("{unit}\nRestartt=always\n"), BIN);
    assert!(
        said.contains("Restartt"),
        "an unknown key went unnoticed: {said:?}"
    );
    let (ok, _) = verify(&unit, "/nonexistent/scx_brisk");
    assert!(!ok, "a unit whose binary is missing verified");
}

#[test]
fn install_lays_out_the_binary_unit_flags_and_policies() {
    let dest = scratch("install");
    let out = Command::new(repo().join("dist/install"))
        .arg(&dest)
        .env("SCX_BRISK_BIN", BIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = |p: &str| dest.join(p.trim_start_matches('/'));
    assert!(at(INSTALLED_BIN).is_file());
    assert!(at("/etc/systemd/system/scx_brisk.service").is_file());
    // Every policy shipped, and the one the flags file names among them.
    for entry in std::fs::read_dir(repo().join("scheduler-policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().unwrap();
            assert!(at("/etc/scx_brisk").join(name).is_file(), "{name:?}");
        }
    }
    let flags = std::fs::read_to_string(at("/etc/default/scx_brisk")).unwrap();
    let policy = flags
        .split_whitespace()
        .skip_while(|w| !w.ends_with("--policy"))
        .nth(1)
        .expect("the flags file names a policy")
        .trim_matches('"');
    assert!(at(policy).is_file(), "{policy} is not installed");
    // A flags file the user edited is kept by a second install.
    std::fs::write(at("/etc/default/scx_brisk"), "SCX_BRISK_FLAGS=\"--auto\"\n").unwrap();
    let again = Command::new(repo().join("dist/install"))
        .arg(&dest)
        .env("SCX_BRISK_BIN", BIN)
        .status()
        .unwrap();
    assert!(again.success());
    let kept = std::fs::read_to_string(at("/etc/default/scx_brisk")).unwrap();
    assert!(
        kept.contains("--auto"),
        "the edited flags file was overwritten"
    );
    // Without a built binary it says what to do.
    let missing = Command::new(repo().join("dist/install"))
        .arg(&dest)
        .env("SCX_BRISK_BIN", "/nonexistent/scx_brisk")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cargo build --release"));
    let _ = std::fs::remove_dir_all(&dest);
}
