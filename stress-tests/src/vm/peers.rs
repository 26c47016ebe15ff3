//! `brisk-vm bench --peers`: upstream sched_ext schedulers from crates.io, built once into the
//! harness's cache and run in the guest as candidates with their defaults, as users run them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The peers and the versions they are pinned to (built with this workspace's toolchain).
pub const PEERS: [(&str, &str); 3] = [
    ("scx_bpfland", "1.1.4"),
    ("scx_cosmos", "1.1.7"),
    ("scx_lavd", "1.1.4"),
];

/// A peer's short name in the report: `scx_bpfland` -> `bpfland`.
pub fn short_name(krate: &str) -> &str {
    krate.strip_prefix("scx_").unwrap_or(krate)
}

/// Where `krate@version` is installed under `cache`: `<cache>/<krate>-<version>/bin/<krate>`.
pub fn binary_path(cache: &Path, krate: &str, version: &str) -> PathBuf {
    cache
        .join(format!("{krate}-{version}"))
        .join("bin")
        .join(krate)
}

/// Builds every peer missing from `cache` (`cargo install --locked`, a few minutes each the
/// first time) and returns `--candidate` specs for them: `bpfland=<path>`, ...
pub fn ensure(cache: &Path) -> Result<Vec<String>> {
    let mut specs = Vec::new();
    for (krate, version) in PEERS {
        let bin = binary_path(cache, krate, version);
        if !bin.is_file() {
            install(cache, krate, version)?;
        }
        if !bin.is_file() {
            bail!(
                "cargo install {krate}@{version} succeeded but left no {}",
                bin.display()
            );
        }
        specs.push(format!("{}={}", short_name(krate), bin.display()));
    }
    Ok(specs)
}

fn install(cache: &Path, krate: &str, version: &str) -> Result<()> {
    let root = cache.join(format!("{krate}-{version}"));
    println!(
        "==> [peers] cargo install --locked {krate}@{version} into {} (once; a few minutes)",
        root.display()
    );
    let clang = std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang-19".into());
    let status = Command::new("cargo")
        .args(["install", "--locked", "--quiet", "--root"])
        .arg(&root)
        .arg(format!("{krate}@{version}"))
        .env("BPF_CLANG", clang)
        .status()
        .with_context(|| format!("running cargo install {krate}@{version}"))?;
    if !status.success() {
        bail!(
            "cargo install --locked {krate}@{version} failed ({status}); it needs crates.io, \
             clang >= 16 (BPF_CLANG) and libelf/zlib headers"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(short_name("scx_cosmos"), "cosmos");
        assert_eq!(short_name("other"), "other");
        assert_eq!(
            binary_path(Path::new("/c"), "scx_lavd", "1.1.4"),
            PathBuf::from("/c/scx_lavd-1.1.4/bin/scx_lavd")
        );
    }

    #[test]
    fn cached_peers_are_not_rebuilt() {
        let dir = std::env::temp_dir().join(format!("brisk-peers-{}", std::process::id()));
        for (krate, version) in PEERS {
            let bin = binary_path(&dir, krate, version);
            std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
            std::fs::write(&bin, "").unwrap();
        }
        let specs = ensure(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(specs.len(), PEERS.len());
        assert!(specs[0].starts_with("bpfland=") && specs[0].ends_with("/bin/scx_bpfland"));
    }
}
