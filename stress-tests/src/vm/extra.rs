//! Extra files for one guest run (the bench's candidate schedulers), appended to the
//! initramfs as a second gzip'd cpio archive: the kernel unpacks concatenated archives in
//! turn, so the main archive is built as usual and left alone.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::cpio::Archive;
use super::initramfs::add_program;

/// An archive of `files` (host path, guest path), with the shared libraries `ldd` lists for
/// each at their host paths.
pub fn archive(files: &[(PathBuf, String)]) -> Result<Archive> {
    let mut archive = Archive::default();
    for (host, guest) in files {
        add_program(&mut archive, host, guest)?;
    }
    Ok(archive)
}

/// Appends `files` to the gzip'd initramfs at `initramfs`.
pub fn append(initramfs: &Path, files: &[(PathBuf, String)]) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let archive = archive(files)?;
    let out = OpenOptions::new()
        .append(true)
        .open(initramfs)
        .with_context(|| format!("opening {}", initramfs.display()))?;
    let mut gzip = Command::new("gzip")
        .args(["-1", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .context("running gzip")?;
    let mut stdin = gzip.stdin.take().context("gzip stdin")?;
    let written = archive.write(&mut stdin).and_then(|()| Ok(stdin.flush()?));
    drop(stdin);
    let status = gzip.wait().context("waiting for gzip")?;
    written.context("writing the extra archive")?;
    if !status.success() {
        bail!("gzip failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_archive_follows_the_first() {
        let dir = std::env::temp_dir().join(format!("brisk-extra-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("initramfs.cpio.gz");
        std::fs::write(&img, b"first").unwrap();
        let exe = std::env::current_exe().unwrap();
        append(&img, &[(exe, "/opt/candidates/x".into())]).unwrap();
        let bytes = std::fs::read(&img).unwrap();
        assert!(bytes.starts_with(b"first\x1f\x8b"), "a gzip member follows");
        // The archive lists the binary and its libraries (this test binary is dynamic).
        let a = archive(&[(std::env::current_exe().unwrap(), "/opt/candidates/x".into())]).unwrap();
        assert!(a.contains("/opt/candidates/x"));
        append(&img, &[]).unwrap();
        assert_eq!(std::fs::read(&img).unwrap().len(), bytes.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
