//! The guest of `brisk-vm test --service`: Debian trixie with systemd as PID 1 (a minimal
//! rootfs made once with debootstrap and cached in target/vm/systemd-rootfs), what the
//! README's install command needs of this checkout, and a unit that runs `brisk-guest test
//! --service` once the system is up (it installs and enables scx_brisk as a user would) and
//! powers the guest off.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use brisk_stress::SERVICE_CHECKOUT;

use super::cpio::{Archive, Content};
use super::initramfs::{self, GuestBinaries, EXIT_MARKER, RESULT_PORT};
use super::kernel::Kernel;

/// The Debian release of the rootfs (the guest kernel's own).
const SUITE: &str = "trixie";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What minbase lacks: systemd as init, D-Bus for systemctl, and the libelf scx_brisk links.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,libelf1t64";
/// Written last into the rootfs: a rootfs without it is an interrupted debootstrap.
const COMPLETE: &str = ".brisk-rootfs-complete";
/// The unit that runs the check.
const CHECK_UNIT: &str = "brisk-service-check.service";

/// The cached rootfs under `vm_dir`, made with debootstrap if it is missing or incomplete.
pub fn rootfs(vm_dir: &Path) -> Result<PathBuf> {
    let dir = vm_dir.join("systemd-rootfs");
    if dir.join(COMPLETE).is_file() {
        println!("    cached in {}", dir.display());
        return Ok(dir);
    }
    if std::fs::exists(&dir)? {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        bail!("making the systemd guest's rootfs with debootstrap needs root");
    }
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE])
        .arg(&dir)
        .arg(MIRROR)
        .status()
        .context("running debootstrap (Debian package debootstrap; stress-tests/vm installs it)")?;
    if !status.success() {
        bail!(
            "debootstrap {SUITE} into {} failed ({status})",
            dir.display()
        );
    }
    // What the guest never reads: about half of the rootfs, all of it copied at every boot.
    for unused in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "usr/share/info",
        "var/cache/apt",
        "var/lib/apt/lists",
    ] {
        let path = dir.join(unused);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    std::fs::write(dir.join(COMPLETE), SUITE)?;
    Ok(dir)
}

/// Builds the gzip'd initramfs at `out`: the rootfs, the files of this checkout that
/// `dist/install` installs (with the built binary at target/release/scx_brisk) under
/// SERVICE_CHECKOUT, and the check, which runs the install. The kernel runs /init, systemd.
pub fn build(out: &Path, rootfs: &Path, bins: &GuestBinaries, kernel: &Kernel) -> Result<()> {
    let mut archive = Archive::default();
    archive.tree(rootfs)?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checkout = vec![
        (
            workspace.join("dist/install"),
            "dist/install".to_string(),
            0o755,
        ),
        (
            bins.scx_brisk.clone(),
            "target/release/scx_brisk".to_string(),
            0o755,
        ),
    ];
    for dir in ["dist", "scheduler-policies"] {
        let path = workspace.join(dir);
        for entry in
            std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))?
        {
            let file = entry?.path();
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            if file.is_file() && name != "install" {
                checkout.push((file.clone(), format!("{dir}/{name}"), 0o644));
            }
        }
    }
    for (host, rel, perm) in checkout {
        archive.file(
            &format!("{SERVICE_CHECKOUT}/{rel}"),
            Content::Host(host),
            perm,
        );
    }
    archive.file(
        "/usr/local/bin/brisk-guest",
        Content::Host(bins.brisk_guest.clone()),
        0o755,
    );
    archive.file(
        "/usr/local/sbin/brisk-service-check",
        Content::Bytes(check_script().into_bytes()),
        0o755,
    );
    archive.file(
        &format!("/etc/systemd/system/{CHECK_UNIT}"),
        Content::Bytes(CHECK_UNIT_FILE.as_bytes().to_vec()),
        0o644,
    );
    archive.symlink(
        &format!("/etc/systemd/system/multi-user.target.wants/{CHECK_UNIT}"),
        &format!("/etc/systemd/system/{CHECK_UNIT}"),
    );
    // No login prompt on the console: the kernel log and systemd's status lines only.
    archive.symlink(
        "/etc/systemd/system/serial-getty@ttyS0.service",
        "/dev/null",
    );
    archive.symlink("/etc/systemd/system/getty@tty1.service", "/dev/null");
    archive.file(
        "/etc/hostname",
        Content::Bytes(b"brisk-service\n".to_vec()),
        0o644,
    );
    archive.char_dev("/dev/console", 5, 1);
    initramfs::add_kernel_config(&mut archive, kernel)?;
    archive.symlink("/init", "/usr/lib/systemd/systemd");
    initramfs::write_gzip(&archive, out)
}

/// Runs the check with its output on the result port, writes the exit line and powers off.
fn check_script() -> String {
    format!(
        r#"#!/bin/sh
# Generated by brisk-vm: the service test's output goes to {port} (the host's result.log).
stty -F {port} raw -echo 2>/dev/null
/usr/local/bin/brisk-guest test --service >{port} 2>&1 </dev/null
code=$?
echo "{marker} $code" >{port}
systemctl poweroff --force --force
"#,
        port = RESULT_PORT,
        marker = EXIT_MARKER,
    )
}

/// Starts the check once the system is up. Not After=multi-user.target, which wants it: an
/// ordering cycle.
const CHECK_UNIT_FILE: &str = "\
[Unit]
Description=brisk-vm: check scx_brisk.service, then power off
After=basic.target

[Service]
Type=oneshot
TimeoutStartSec=infinity
ExecStart=/usr/local/sbin/brisk-service-check

[Install]
WantedBy=multi-user.target
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_script_reports_and_powers_off() {
        let script = check_script();
        assert!(script.contains("brisk-guest test --service >/dev/ttyS1"));
        assert!(script.contains(&format!("echo \"{EXIT_MARKER} $code\" >/dev/ttyS1")));
    }
}
