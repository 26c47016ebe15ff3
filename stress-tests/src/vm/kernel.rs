//! The guest kernel: Debian's trixie-backports cloud kernel (fetched with a private apt
//! configuration, cached under target/vm/kernel/<KVER>/) or a kernel image the user gives.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The suite whose cloud kernel has `CONFIG_SCHED_CLASS_EXT=y` (bookworm's 6.1/6.12 do not).
pub const SUITE: &str = "trixie-backports";
/// The meta-package that names the current kernel version.
pub const META_PACKAGE: &str = "linux-image-cloud-amd64";
const MIRROR: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const SCHED_EXT_OPTION: &str = "CONFIG_SCHED_CLASS_EXT";

/// A kernel ready to boot.
pub struct Kernel {
    pub vmlinuz: PathBuf,
    /// Its config, installed in the guest as /boot/config-<KVER>.
    pub config: Option<PathBuf>,
    /// `uname -r` of the kernel, if known.
    pub kver: Option<String>,
}

/// `--kernel PATH [--kernel-config PATH]`.
pub fn user_kernel(image: &Path, config: Option<&Path>) -> Result<Kernel> {
    let bytes = fs::read(image).with_context(|| format!("reading --kernel {}", image.display()))?;
    let kver = bzimage_version(&bytes);
    match &kver {
        Some(kver) => println!("    kernel version {kver}"),
        None => eprintln!(
            "warning: {} is not a bzImage with a version string; qemu may not boot it",
            image.display()
        ),
    }
    match config {
        Some(config) => check_config(config)?,
        None => eprintln!(
            "warning: --kernel without --kernel-config: the guest will have no \
             /boot/config-<KVER>, so libbpf cannot resolve __kconfig externs (BPF objects that \
             read the kernel config fail to load), and CONFIG_SCHED_CLASS_EXT=y is not checked"
        ),
    }
    Ok(Kernel {
        vmlinuz: image.to_path_buf(),
        config: config.map(Path::to_path_buf),
        kver,
    })
}

/// Debian's trixie-backports cloud kernel, from the cache if it is current (or if apt is
/// offline), else downloaded.
pub fn debian_kernel(vm_dir: &Path) -> Result<Kernel> {
    let cache_root = vm_dir.join("kernel");
    let apt = Apt::new(&vm_dir.join("apt").join(SUITE))?;
    let kver = match apt.update().and_then(|()| apt.resolve_kver()) {
        Ok(kver) => kver,
        Err(e) => match newest_cached(&cache_root) {
            Some(kver) => {
                eprintln!("note: cannot ask apt for the current kernel ({e:#})");
                eprintln!("note: reusing the cached kernel {kver}");
                kver
            }
            None => {
                return Err(e.context(format!(
                    "fetching the {SUITE} kernel (no cached kernel in {})",
                    cache_root.display()
                )))
            }
        },
    };
    let dir = cache_root.join(&kver);
    if is_complete(&dir) {
        println!("    kernel {kver} (cached in {})", dir.display());
    } else {
        download(&apt, &kver, &cache_root)?;
        println!("    kernel {kver} (downloaded to {})", dir.display());
    }
    let config = dir.join("config");
    check_config(&config)?;
    Ok(Kernel {
        vmlinuz: dir.join("vmlinuz"),
        config: Some(config),
        kver: Some(kver),
    })
}

/// apt-get / apt-cache with a private configuration: only the trixie-backports source, lists
/// and caches under `dir`. The system's /etc/apt sources are never touched.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(dir: &Path) -> Result<Apt> {
        for sub in ["sources", "lists/partial", "cache/archives/partial"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let list = dir.join("sources").join("brisk-kernel.list");
        fs::write(
            &list,
            format!("deb [signed-by={KEYRING}] {MIRROR} {SUITE} main\n"),
        )
        .with_context(|| format!("writing {}", list.display()))?;
        Ok(Apt {
            dir: dir.to_path_buf(),
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-q")
            .arg("-o")
            .arg("Dir::Etc::SourceList=/dev/null")
            .arg("-o")
            .arg(format!(
                "Dir::Etc::SourceParts={}",
                self.dir.join("sources").display()
            ))
            .arg("-o")
            .arg(format!(
                "Dir::State::Lists={}",
                self.dir.join("lists").display()
            ))
            .arg("-o")
            .arg(format!("Dir::Cache={}", self.dir.join("cache").display()))
            // As root apt downloads as user _apt, who cannot write to our directories.
            .arg("-o")
            .arg("APT::Sandbox::User=root");
        cmd
    }

    fn update(&self) -> Result<()> {
        if !Path::new(KEYRING).exists() {
            bail!("{KEYRING} is missing (install debian-archive-keyring)");
        }
        let mut cmd = self.command("apt-get");
        cmd.arg("update");
        let out = output(&mut cmd, "apt-get update")?;
        // apt-get update exits 0 even when a source could not be fetched.
        let failed = out.lines().any(|l| {
            l.starts_with("E: ")
                || l.starts_with("W: Failed to fetch")
                || l.starts_with("W: Some index files failed")
        });
        if failed {
            let problems: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
                .collect();
            bail!(
                "apt-get update for {SUITE} failed:\n{}",
                problems.join("\n")
            );
        }
        Ok(())
    }

    fn depends(&self, package: &str) -> Result<String> {
        let mut cmd = self.command("apt-cache");
        cmd.arg("depends").arg(package);
        output(&mut cmd, &format!("apt-cache depends {package}"))
    }

    fn resolve_kver(&self) -> Result<String> {
        let out = self.depends(META_PACKAGE)?;
        kver_from_depends(&out).with_context(|| {
            format!(
                "no linux-image-<KVER> dependency in `apt-cache depends {META_PACKAGE}`:\n{out}"
            )
        })
    }
}

/// Downloads the packages of kernel `kver` and stores vmlinuz, config and KVER in
/// `cache_root/<kver>/`.
fn download(apt: &Apt, kver: &str, cache_root: &Path) -> Result<()> {
    let image = format!("linux-image-{kver}");
    let packages = kernel_packages(&apt.depends(&image)?, kver);
    let staging = cache_root.join(format!(".{kver}.partial"));
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    let tree = staging.join("tree");
    fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;

    println!("    downloading {}", packages.join(" "));
    let mut cmd = apt.command("apt-get");
    cmd.arg("download").args(&packages).current_dir(&staging);
    output(&mut cmd, "apt-get download")?;

    for entry in fs::read_dir(&staging).with_context(|| format!("listing {}", staging.display()))? {
        let deb = entry?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            let mut cmd = Command::new("dpkg-deb");
            cmd.arg("-x").arg(&deb).arg(&tree);
            output(&mut cmd, &format!("dpkg-deb -x {}", deb.display()))?;
        }
    }

    let mut files = Vec::new();
    list_files(&tree, &tree, &mut files)?;
    let (vmlinuz, config) = pick_kernel_files(&files, kver).with_context(|| {
        format!(
            "finding vmlinuz and config of {kver} in {} ({})",
            packages.join(", "),
            tree.display()
        )
    })?;
    println!(
        "    found /{} and /{} in the packages",
        vmlinuz.display(),
        config.display()
    );

    let dir = cache_root.join(kver);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (from, to) in [(&vmlinuz, "vmlinuz"), (&config, "config")] {
        fs::copy(tree.join(from), dir.join(to))
            .with_context(|| format!("copying {} to {}", from.display(), dir.display()))?;
    }
    // Written last: marks the cache entry complete.
    fs::write(dir.join("KVER"), format!("{kver}\n"))
        .with_context(|| format!("writing {}", dir.join("KVER").display()))?;
    fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    Ok(())
}

fn is_complete(dir: &Path) -> bool {
    ["vmlinuz", "config", "KVER"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// The most recently downloaded complete kernel in the cache.
fn newest_cached(cache_root: &Path) -> Option<String> {
    fs::read_dir(cache_root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| is_complete(&e.path()))
        .filter_map(|e| {
            let mtime = fs::metadata(e.path().join("KVER")).ok()?.modified().ok()?;
            Some((mtime, e.file_name().into_string().ok()?))
        })
        .max()
        .map(|(_, kver)| kver)
}

/// Relative paths of all regular files under `dir`.
fn list_files(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            list_files(base, &entry.path(), out)?;
        } else if ty.is_file() {
            out.push(entry.path().strip_prefix(base)?.to_path_buf());
        }
    }
    Ok(())
}

/// Fails unless the config at `path` has `CONFIG_SCHED_CLASS_EXT=y`.
fn check_config(path: &Path) -> Result<()> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading kernel config {}", path.display()))?;
    if !config_enabled(&text, SCHED_EXT_OPTION) {
        bail!(
            "kernel config {} does not have {SCHED_EXT_OPTION}=y: this kernel cannot run \
             sched_ext schedulers",
            path.display()
        );
    }
    if !config_enabled(&text, "CONFIG_DEBUG_INFO_BTF") {
        eprintln!(
            "warning: {} lacks CONFIG_DEBUG_INFO_BTF=y; scx_brisk needs kernel BTF",
            path.display()
        );
    }
    Ok(())
}

/// Runs `cmd`, returning stdout+stderr; fails with that output if it exits non-zero.
fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {what} (is {:?} installed?)", cmd.get_program()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{what} failed ({}):\n{}", out.status, text.trim());
    }
    Ok(text)
}

// ---- pure helpers ----

/// `option=y` is set in a kernel config text.
pub fn config_enabled(config: &str, option: &str) -> bool {
    config
        .lines()
        .any(|l| l.trim().strip_prefix(option) == Some("=y"))
}

/// The KVER of the `Depends: linux-image-<KVER>` line of `apt-cache depends
/// linux-image-cloud-amd64` (a KVER starts with a digit, unlike `linux-image-cloud-amd64`).
pub fn kver_from_depends(depends: &str) -> Option<String> {
    dependencies(depends)
        .filter_map(|dep| dep.strip_prefix("linux-image-"))
        .find(|kver| kver.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
}

/// The packages holding kernel `kver`'s files: `linux-image-<KVER>` and, since 7.x where the
/// files are split out, its dependencies `linux-binary-<KVER>` (vmlinuz) and
/// `linux-base-<KVER>` (config). The modules are not needed.
pub fn kernel_packages(image_depends: &str, kver: &str) -> Vec<String> {
    let mut packages = vec![format!("linux-image-{kver}")];
    for prefix in ["linux-binary-", "linux-base-"] {
        let wanted = format!("{prefix}{kver}");
        if dependencies(image_depends).any(|d| d == wanted) {
            packages.push(wanted);
        }
    }
    packages
}

/// Package names on `Depends:`/`PreDepends:` lines of `apt-cache depends` output
/// (virtual packages, shown as `<name>`, are skipped).
fn dependencies(depends: &str) -> impl Iterator<Item = &str> {
    depends.lines().filter_map(|line| {
        let line = line.trim().trim_start_matches('|');
        let name = line
            .strip_prefix("Depends:")
            .or_else(|| line.strip_prefix("PreDepends:"))?
            .trim();
        (!name.starts_with('<') && !name.is_empty()).then_some(name)
    })
}

/// Picks vmlinuz and config out of the files of the extracted packages: 7.x packages have
/// `usr/lib/modules/<KVER>/{vmlinuz,config}`, older ones `boot/{vmlinuz,config}-<KVER>`.
pub fn pick_kernel_files(files: &[PathBuf], kver: &str) -> Result<(PathBuf, PathBuf)> {
    let named = |names: [String; 2]| {
        files
            .iter()
            .find(|f| {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let parent = f
                    .parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .unwrap_or("");
                (name == names[0] && parent == kver) || name == names[1]
            })
            .cloned()
    };
    let vmlinuz = named(["vmlinuz".into(), format!("vmlinuz-{kver}")])
        .context("no vmlinuz in the packages")?;
    let config =
        named(["config".into(), format!("config-{kver}")]).context("no config in the packages")?;
    Ok((vmlinuz, config))
}

/// The kernel version (`uname -r`) from a bzImage's setup header, if it has one.
pub fn bzimage_version(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let offset = u16::from_le_bytes([*image.get(0x20e)?, *image.get(0x20f)?]) as usize + 0x200;
    let text = image.get(offset..)?;
    let end = text.iter().position(|&b| b == 0 || b == b' ')?;
    let kver = std::str::from_utf8(&text[..end]).ok()?;
    (!kver.is_empty()).then(|| kver.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const META_DEPENDS: &str = "linux-image-cloud-amd64
  Depends: linux-base-cloud-amd64
  Depends: linux-image-7.3.4+deb13-cloud-amd64
  Depends: linux-modules-cloud-amd64
";

    const IMAGE_DEPENDS: &str = "linux-image-7.3.4+deb13-cloud-amd64
  PreDepends: linux-base
 |Depends: <dracut>
 |Depends: <initramfs-tools>
  Depends: <linux-initramfs-tool>
  Depends: linux-base-7.3.4+deb13-cloud-amd64
  Depends: linux-binary-7.3.4+deb13-cloud-amd64
  Depends: linux-modules-7.3.4+deb13-cloud-amd64
  Breaks: <fwupdate>
  Suggests: linux-doc-7.3
";

    #[test]
    fn kver_from_meta_package() {
        assert_eq!(
            kver_from_depends(META_DEPENDS).as_deref(),
            Some("7.3.4+deb13-cloud-amd64")
        );
        // 6.x metas depend on the image package directly too.
        let old = "linux-image-cloud-amd64\n  Depends: linux-image-6.12.9+bpo-cloud-amd64\n";
        assert_eq!(
            kver_from_depends(old).as_deref(),
            Some("6.12.9+bpo-cloud-amd64")
        );
        assert_eq!(kver_from_depends("linux-image-cloud-amd64\n"), None);
    }

    #[test]
    fn packages_of_split_and_old_kernels() {
        let kver = "7.3.4+deb13-cloud-amd64";
        assert_eq!(
            kernel_packages(IMAGE_DEPENDS, kver),
            [
                "linux-image-7.3.4+deb13-cloud-amd64",
                "linux-binary-7.3.4+deb13-cloud-amd64",
                "linux-base-7.3.4+deb13-cloud-amd64",
            ]
        );
        let old = "linux-image-6.1.0-9-cloud-amd64\n  PreDepends: linux-base\n";
        assert_eq!(
            kernel_packages(old, "6.1.0-9-cloud-amd64"),
            ["linux-image-6.1.0-9-cloud-amd64"]
        );
    }

    #[test]
    fn finds_kernel_files() {
        let kver = "7.3.4+deb13-cloud-amd64";
        let files: Vec<PathBuf> = [
            "usr/share/doc/linux-base-7.3.4+deb13-cloud-amd64/copyright",
            "usr/lib/modules/7.3.4+deb13-cloud-amd64/System.map",
            "usr/lib/modules/7.3.4+deb13-cloud-amd64/config",
            "usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let (vmlinuz, config) = pick_kernel_files(&files, kver).unwrap();
        assert_eq!(
            vmlinuz,
            Path::new("usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz")
        );
        assert_eq!(
            config,
            Path::new("usr/lib/modules/7.3.4+deb13-cloud-amd64/config")
        );

        let old: Vec<PathBuf> = ["boot/config-6.1.0-9-amd64", "boot/vmlinuz-6.1.0-9-amd64"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let (vmlinuz, config) = pick_kernel_files(&old, "6.1.0-9-amd64").unwrap();
        assert_eq!(vmlinuz, Path::new("boot/vmlinuz-6.1.0-9-amd64"));
        assert_eq!(config, Path::new("boot/config-6.1.0-9-amd64"));

        assert!(pick_kernel_files(&files[..3], kver).is_err());
    }

    #[test]
    fn config_options() {
        let config = "# CONFIG_FOO is not set\nCONFIG_SCHED_CLASS_EXT=y\nCONFIG_BAR=m\n";
        assert!(config_enabled(config, "CONFIG_SCHED_CLASS_EXT"));
        assert!(!config_enabled(config, "CONFIG_FOO"));
        assert!(!config_enabled(config, "CONFIG_BAR"));
        assert!(!config_enabled(
            "CONFIG_SCHED_CLASS_EXTRA=y\n",
            "CONFIG_SCHED_CLASS_EXT"
        ));
    }

    #[test]
    fn bzimage_header_version() {
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let text = b"7.3.4+deb13-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        image[0x300..0x300 + text.len()].copy_from_slice(text);
        assert_eq!(
            bzimage_version(&image).as_deref(),
            Some("7.3.4+deb13-cloud-amd64")
        );
        image[0x202] = b'X';
        assert_eq!(bzimage_version(&image), None);
        assert_eq!(bzimage_version(b"short"), None);
    }
}
