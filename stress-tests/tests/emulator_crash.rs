//! brisk-vm against a stand-in for qemu: a guest that dies of the emulator's stale-code race
//! (`Oops: int3` with the int3 gone from memory) is booted once more, once; any other crash, or
//! the race twice, fails the run with the harness's VM-failure exit code. So is a guest that
//! writes nothing at all (a boot the emulator hung), once.
//!
//! The stand-in is a shell script named qemu-system-x86_64 first in PATH. It writes, per boot,
//! what the next word of $FAKE_QEMU_BOOTS says to the serial files qemu would have written:
//! `race` (the CI crash of 2026-11-28), `gpf` (a general protection fault), `hang` (nothing,
//! as the masks guest of a CI run on 2026-12-01 wrote for 15 minutes) or `ok` (the guest's
//! exit line). Booting needs the host's busybox, stress-ng and hackbench (`stress-tests/vm
//! install`), as the real harness does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const FAKE_QEMU: &str = r#"#!/bin/sh
set -eu
if [ "${1:-}" = --version ]; then echo "QEMU emulator version 0.0.0 (stand-in)"; exit 0; fi
console="" result=""
for a in "$@"; do
    case "$a" in
    file:*) if [ -z "$console" ]; then console="${a#file:}"; else result="${a#file:}"; fi ;;
    esac
done
n=$(($(cat "$FAKE_QEMU_STATE/boots" 2>/dev/null || echo 0) + 1))
echo "$n" >"$FAKE_QEMU_STATE/boots"
what=$(echo "$FAKE_QEMU_BOOTS" | cut -d, -f"$n")
oops() {
    printf '[   38.395000] Oops: %s: 0000 [#1] SMP NOPTI\r\n' "$1"
    printf '[   38.395200] RIP: 0010:_nohz_idle_balance.isra.0+0x1d7/0x390\r\n'
    printf '[   38.395300] Code: 4c 89 e7 e8 1e 73 fe ff 49 89 c6 e8 5a d7 fd ff 0f <1f> 44 00 00 49\r\n'
    printf '[   38.415633] Kernel panic - not syncing: Fatal exception in interrupt\r\n'
}
case "$what" in
race) oops int3 >>"$console" ;;
gpf) oops "general protection fault" >>"$console" ;;
ok) echo "guest ran" >>"$result"; echo "BRISK-GUEST-EXIT 0" >>"$result" ;;
hang) exec sleep 60 ;;
*) echo "stand-in qemu: no boot $n in '$FAKE_QEMU_BOOTS'" >&2; exit 1 ;;
esac
"#;

/// Where the stand-in and its workspace live; removed on drop.
struct Rig {
    dir: PathBuf,
}

impl Rig {
    fn new(name: &str) -> Rig {
        let dir = std::env::temp_dir().join(format!("brisk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["bin", "root/stress-tests", "root/target/release", "state"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let qemu = dir.join("bin/qemu-system-x86_64");
        fs::write(&qemu, FAKE_QEMU).unwrap();
        make_executable(&qemu);
        // The guest binaries only need to exist and be programs ldd can read.
        for bin in ["scx_brisk", "brisk-guest"] {
            fs::copy("/bin/true", dir.join("root/target/release").join(bin)).unwrap();
        }
        fs::write(dir.join("vmlinuz"), b"not a kernel").unwrap();
        Rig { dir }
    }

    /// Runs `brisk-vm test` with the stand-in booting as `boots` says; returns the exit code,
    /// the combined output and how many times qemu was started.
    fn run(&self, boots: &str) -> (i32, String, u32) {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(env!("CARGO_BIN_EXE_brisk-vm"))
            .args(["test", "--timeout-s", "60", "--kernel"])
            .arg(self.dir.join("vmlinuz"))
            .env("PATH", path)
            .env("BRISK_ROOT", self.dir.join("root"))
            .env("FAKE_QEMU_STATE", self.dir.join("state"))
            .env("FAKE_QEMU_BOOTS", boots)
            .env("BRISK_SILENT_BOOT_S", "3")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let booted = fs::read_to_string(self.dir.join("state/boots"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0);
        (out.status.code().unwrap_or(-1), text, booted)
    }

    fn kept_log(&self) -> PathBuf {
        self.dir.join("root/target/vm/console-emulator-crash.log")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The harness needs the host's guest userland; CI installs it, a bare dev machine may not.
fn host_can_build_initramfs() -> bool {
    let have = ["/bin/busybox", "/usr/bin/stress-ng", "/usr/bin/hackbench"]
        .iter()
        .all(|p| Path::new(p).exists());
    if !have && std::env::var_os("CI").is_some() {
        panic!("busybox, stress-ng or hackbench is missing under CI: run stress-tests/vm install");
    }
    if !have {
        eprintln!("skipped: busybox, stress-ng or hackbench missing (stress-tests/vm install)");
    }
    have
}

#[test]
fn the_emulator_race_gets_one_more_boot() {
    if !host_can_build_initramfs() {
        return;
    }
    let rig = Rig::new("race-ok");
    let (code, out, boots) = rig.run("race,ok");
    assert_eq!(code, 0, "{out}");
    assert_eq!(boots, 2, "{out}");
    assert!(out.contains("(second boot)"), "{out}");
    assert!(out.contains("Oops: int3"), "{out}");
    let kept = fs::read_to_string(rig.kept_log()).unwrap();
    assert!(kept.contains("Oops: int3"), "{kept}");
}

#[test]
fn the_race_twice_fails() {
    if !host_can_build_initramfs() {
        return;
    }
    let rig = Rig::new("race-race");
    let (code, out, boots) = rig.run("race,race,ok");
    assert_eq!(code, 3, "{out}");
    assert_eq!(boots, 2, "{out}");
    assert!(out.contains("the guest kernel panicked"), "{out}");
    // The report starts at the oops, not in the middle of its backtrace.
    assert!(out.contains("from its first oops"), "{out}");
}

#[test]
fn any_other_crash_fails_at_once() {
    if !host_can_build_initramfs() {
        return;
    }
    let rig = Rig::new("gpf-ok");
    let (code, out, boots) = rig.run("gpf,ok");
    assert_eq!(code, 3, "{out}");
    assert_eq!(boots, 1, "{out}");
    assert!(!rig.kept_log().exists());
}

#[test]
fn a_silent_boot_gets_one_more_boot() {
    if !host_can_build_initramfs() {
        return;
    }
    let rig = Rig::new("hang-ok");
    let (code, out, boots) = rig.run("hang,ok");
    assert_eq!(code, 0, "{out}");
    assert_eq!(boots, 2, "{out}");
    assert!(
        out.contains("wrote nothing") && out.contains("(second boot)"),
        "{out}"
    );
    let rig = Rig::new("hang-hang");
    let (code, out, boots) = rig.run("hang,hang,ok");
    assert_eq!(code, 3, "{out}");
    assert_eq!(boots, 2, "{out}");
}
