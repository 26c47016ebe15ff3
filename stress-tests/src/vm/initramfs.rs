//! The guest's initramfs: busybox, scx_brisk, brisk-guest, stress-ng, hackbench (with the
//! shared libraries they need), the kernel config and a generated /init.

use super::cpio::{Archive, Content};
use super::kernel::Kernel;
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The line the guest's /init writes to the result port after brisk-guest exits.
pub const EXIT_MARKER: &str = "BRISK-GUEST-EXIT";
/// The guest device the host reads as result.log (qemu's second `-serial`).
pub const RESULT_PORT: &str = "/dev/ttyS1";
const HOST_BUSYBOX: &str = "/bin/busybox";
const DYNAMIC_LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// Host workloads copied to the same path in the guest: (command, package that has it).
const WORKLOADS: [(&str, &str); 2] = [("stress-ng", "stress-ng"), ("hackbench", "rt-tests")];

/// The project's binaries that go into the guest.
pub struct GuestBinaries {
    pub scx_brisk: PathBuf,
    pub brisk_guest: PathBuf,
}

impl GuestBinaries {
    pub fn locate(release_dir: &Path) -> Result<GuestBinaries> {
        let find = |name: &str, package: &str| {
            let path = release_dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "{} is missing: build it first with `cargo build --release -p {package}` \
                     (stress-tests/vm does that)",
                    path.display()
                )
            }
        };
        Ok(GuestBinaries {
            scx_brisk: find("scx_brisk", "scx_brisk")?,
            brisk_guest: find("brisk-guest", "brisk-stress")?,
        })
    }
}

/// Builds the gzip'd newc initramfs at `out`; /init runs `/bin/brisk-guest <guest_argv>`.
pub fn build(
    out: &Path,
    bins: &GuestBinaries,
    kernel: &Kernel,
    guest_argv: &[String],
) -> Result<()> {
    let mut archive = Archive::default();
    for dir in [
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/root",
        "/mnt",
        "/sbin",
        "/usr/sbin",
        "/var/tmp",
    ] {
        archive.dir(dir);
    }
    // The kernel opens /dev/console for init's stdio before /init can mount devtmpfs.
    archive.char_dev("/dev/console", 5, 1);
    archive.file(
        "/etc/passwd",
        Content::Bytes(b"root:x:0:0:root:/root:/bin/sh\n".to_vec()),
        0o644,
    );
    archive.file("/etc/group", Content::Bytes(b"root:x:0:\n".to_vec()), 0o644);

    let busybox = Path::new(HOST_BUSYBOX);
    if !busybox.is_file() {
        bail!("{HOST_BUSYBOX} is missing: install busybox-static");
    }
    add_program(&mut archive, busybox, "/bin/busybox")?;
    for applet in busybox_applets(busybox)? {
        archive.symlink(&format!("/bin/{applet}"), "busybox");
    }

    add_program(&mut archive, &bins.scx_brisk, "/bin/scx_brisk")?;
    add_program(&mut archive, &bins.brisk_guest, "/bin/brisk-guest")?;
    // The shipped policy files, at /policies/NAME.toml (tests and `bench --policy` use them).
    archive.dir("/policies");
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scheduler-policies");
    for entry in
        fs::read_dir(&policies).with_context(|| format!("reading {}", policies.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            add_host_file(&mut archive, &path, &format!("/policies/{name}"))?;
        }
    }
    for (command, package) in WORKLOADS {
        let host = find_in_path(command).with_context(|| {
            format!("{command} is not installed on the host (Debian package {package})")
        })?;
        add_program(&mut archive, &host, &format!("/usr/bin/{command}"))?;
    }
    // promtool, which `stress-tests/vm` unpacks next to the initramfs, for the metrics test
    // (which says so if it is missing).
    let promtool = out.with_file_name("promtool");
    if promtool.is_file() {
        add_program(&mut archive, &promtool, "/usr/bin/promtool")?;
    }
    if Path::new(DYNAMIC_LOADER).exists() {
        add_host_file(&mut archive, Path::new(DYNAMIC_LOADER), DYNAMIC_LOADER)?;
    }

    add_kernel_config(&mut archive, kernel)?;

    archive.file(
        "/init",
        Content::Bytes(init_script(guest_argv).into_bytes()),
        0o755,
    );

    write_gzip(&archive, out)
}

/// Adds the kernel's config: libbpf resolves __kconfig externs from /boot/config-$(uname -r).
/// /init links /boot/config there if the version is unknown here.
pub fn add_kernel_config(archive: &mut Archive, kernel: &Kernel) -> Result<()> {
    if let Some(config) = &kernel.config {
        let name = match &kernel.kver {
            Some(kver) => format!("/boot/config-{kver}"),
            None => "/boot/config".to_string(),
        };
        add_host_file(archive, config, &name)?;
    }
    Ok(())
}

/// Adds an executable and every shared library `ldd` lists for it, at their host paths.
pub fn add_program(archive: &mut Archive, host: &Path, guest: &str) -> Result<()> {
    add_host_file(archive, host, guest)?;
    let out = Command::new("ldd")
        .arg(host)
        .output()
        .with_context(|| format!("running ldd {}", host.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let libs = parse_ldd(&text).with_context(|| format!("ldd {}", host.display()))?;
    if !out.status.success() && !libs.is_empty() {
        bail!("ldd {} failed: {}", host.display(), text.trim());
    }
    for lib in libs {
        if !archive.contains(&lib) {
            add_host_file(archive, Path::new(&lib), &lib)?;
        }
    }
    Ok(())
}

/// Adds a host file (following symlinks) with its permission bits.
fn add_host_file(archive: &mut Archive, host: &Path, guest: &str) -> Result<()> {
    let meta = fs::metadata(host).with_context(|| format!("reading {}", host.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", host.display());
    }
    archive.file(
        guest,
        Content::Host(host.to_path_buf()),
        meta.permissions().mode() & 0o7777,
    );
    Ok(())
}

fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", busybox.display()))?;
    if !out.status.success() {
        bail!("{} --list failed", busybox.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        // /init is ours; /bin/busybox is the binary itself.
        .filter(|a| !a.is_empty() && !["busybox", "init", "linuxrc"].contains(a))
        .map(str::to_string)
        .collect())
}

fn find_in_path(command: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join(command))
        .find(|p| p.is_file())
}

/// Writes the archive through `gzip -1` to `out` (via a temporary file, then renamed).
pub fn write_gzip(archive: &Archive, out: &Path) -> Result<()> {
    let tmp = out.with_extension("tmp");
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut gzip = Command::new("gzip")
        .args(["-1", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("running gzip")?;
    let mut counter = CountingWriter {
        inner: BufWriter::new(gzip.stdin.take().context("gzip stdin")?),
        count: 0,
    };
    let written = archive.write(&mut counter).and_then(|()| {
        counter.flush()?;
        Ok(())
    });
    let raw = counter.count;
    drop(counter);
    let status = gzip.wait().context("waiting for gzip")?;
    written.with_context(|| format!("writing {}", tmp.display()))?;
    if !status.success() {
        bail!("gzip failed ({status})");
    }
    fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    let gz = fs::metadata(out)?.len();
    println!(
        "    {:.1} MiB of files, {:.1} MiB compressed",
        raw as f64 / 1048576.0,
        gz as f64 / 1048576.0
    );
    Ok(())
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---- pure helpers ----

/// Library paths in `ldd` output (empty for a static binary); fails on `not found`.
pub fn parse_ldd(output: &str) -> Result<Vec<String>> {
    let mut libs = Vec::new();
    let mut missing = Vec::new();
    for line in output.lines().map(str::trim) {
        if line.contains("not a dynamic executable") || line.contains("statically linked") {
            return Ok(Vec::new());
        }
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    missing.push(name.trim().to_string());
                    continue;
                }
                rest.split_whitespace().next().unwrap_or("")
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(path.to_string());
        }
    }
    if !missing.is_empty() {
        bail!("libraries not found on the host: {}", missing.join(", "));
    }
    Ok(libs)
}

/// Quotes `arg` for a POSIX shell.
pub fn sh_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+=.,:/@%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The guest's /init: mounts, runs brisk-guest with its output on the result port, writes
/// `BRISK-GUEST-EXIT <code>` there and powers off.
pub fn init_script(guest_argv: &[String]) -> String {
    let command: Vec<String> = std::iter::once("/bin/brisk-guest")
        .chain(guest_argv.iter().map(String::as_str))
        .map(sh_quote)
        .collect();
    let command = command.join(" ");
    format!(
        r#"#!/bin/sh
# Generated by brisk-vm. Runs brisk-guest with its output on {port} (the host's result.log),
# then writes "{marker} <code>" there and powers off. Messages from here go to the console.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mnt() {{ mkdir -p "$3" && mount -t "$1" "$2" "$3" || echo "brisk-init: cannot mount $1 on $3"; }}
mnt proc proc /proc
mnt sysfs sysfs /sys
mnt devtmpfs devtmpfs /dev
mnt tmpfs tmpfs /tmp
mnt tmpfs tmpfs /run
mnt tmpfs tmpfs /dev/shm
mnt tracefs tracefs /sys/kernel/tracing
mnt bpf bpf /sys/fs/bpf
mnt cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up || echo "brisk-init: cannot bring up lo"
hostname brisk-guest
kver=$(uname -r)
[ -e "/boot/config-$kver" ] || [ ! -e /boot/config ] || ln -s config "/boot/config-$kver"
# Raw mode: no \n -> \r\n translation on the way to the host.
stty -F {port} raw -echo 2>/dev/null
cd /tmp
echo "brisk-init: running {command_escaped}"
{command} >{port} 2>&1 </dev/null
code=$?
echo "brisk-init: brisk-guest exited with code $code"
echo "{marker} $code" >{port}
sync
poweroff -f
"#,
        port = RESULT_PORT,
        marker = EXIT_MARKER,
        command_escaped = command.replace(['"', '$', '`', '\\'], "_"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_dynamic() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9d)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f9e)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn ldd_static_and_missing() {
        assert!(parse_ldd("\tnot a dynamic executable\n")
            .unwrap()
            .is_empty());
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
        let err = parse_ldd("\tlibbpf.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libbpf.so.1"));
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("--duration-s"), "--duration-s");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$(reboot)"), "'$(reboot)'");
    }

    #[test]
    fn init_runs_guest_and_reports() {
        let argv: Vec<String> = ["run", "--duration-s", "30", "--", "--slice", "a b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let init = init_script(&argv);
        assert!(init.starts_with("#!/bin/sh\n"));
        assert!(init.contains(
            "\n/bin/brisk-guest run --duration-s 30 -- --slice 'a b' >/dev/ttyS1 2>&1 </dev/null\n"
        ));
        assert!(init.contains("\necho \"BRISK-GUEST-EXIT $code\" >/dev/ttyS1\n"));
        assert!(init.trim_end().ends_with("poweroff -f"));
        for mount in [
            "proc /proc",
            "devtmpfs /dev",
            "tracefs /sys/kernel/tracing",
            "bpf /sys/fs/bpf",
            "cgroup2 /sys/fs/cgroup",
            "tmpfs /dev/shm",
        ] {
            assert!(init.contains(mount), "{mount}");
        }
    }
}
