//! A minimal writer for the "newc" cpio format, the format of Linux initramfs archives.

use anyhow::{Context, Result};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Contents of a regular file.
pub enum Content {
    Bytes(Vec<u8>),
    /// Read from the host when the archive is written (symlinks are followed).
    Host(PathBuf),
}

/// Permission bits and owner (uid, gid) of a directory or file.
#[derive(Clone, Copy)]
struct Meta {
    perm: u32,
    owner: (u32, u32),
}

impl Meta {
    const fn root(perm: u32) -> Meta {
        Meta {
            perm,
            owner: (0, 0),
        }
    }
}

enum Node {
    Dir(Meta),
    File { content: Content, meta: Meta },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

/// An archive under construction. Paths are absolute guest paths (`/bin/sh`); parent
/// directories are added automatically, and entries are written parents first.
#[derive(Default)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    pub fn dir(&mut self, path: &str) {
        let key = self.key(path);
        self.nodes
            .entry(key)
            .or_insert(Node::Dir(Meta::root(0o755)));
    }

    /// Adds (or replaces) a regular file with permission bits `perm` (e.g. 0o755).
    pub fn file(&mut self, path: &str, content: Content, perm: u32) {
        let key = self.key(path);
        let meta = Meta::root(perm);
        self.nodes.insert(key, Node::File { content, meta });
    }

    /// Adds a symlink unless `path` already exists.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let key = self.key(path);
        self.nodes
            .entry(key)
            .or_insert_with(|| Node::Symlink(target.to_string()));
    }

    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32) {
        let key = self.key(path);
        self.nodes.insert(key, Node::CharDev { major, minor });
    }

    /// Adds the directory tree at `host` as the guest's `/`: directories and regular files
    /// with their permission bits (setuid and sticky included) and owners, and symlinks.
    /// Device nodes, sockets and FIFOs are left out (the guest mounts devtmpfs on /dev).
    /// Entries already in the archive are replaced.
    pub fn tree(&mut self, host: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut stack = vec![host.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let path = entry?.path();
                let md = std::fs::symlink_metadata(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let guest = format!("/{}", path.strip_prefix(host)?.to_string_lossy());
                let key = self.key(&guest);
                let meta = Meta {
                    perm: md.mode() & 0o7777,
                    owner: (md.uid(), md.gid()),
                };
                let node = if md.is_dir() {
                    stack.push(path);
                    Node::Dir(meta)
                } else if md.is_file() {
                    Node::File {
                        content: Content::Host(path),
                        meta,
                    }
                } else if md.file_type().is_symlink() {
                    let target = std::fs::read_link(&path)
                        .with_context(|| format!("reading the link {}", path.display()))?;
                    Node::Symlink(target.to_string_lossy().into_owned())
                } else {
                    continue;
                };
                self.nodes.insert(key, node);
            }
        }
        Ok(())
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path.trim_matches('/'))
    }

    /// The archive key of `path` (no leading or trailing `/`), after adding its parents.
    fn key(&mut self, path: &str) -> String {
        let key = path.trim_matches('/').to_string();
        let mut parent = Path::new(&key).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            self.nodes
                .entry(p.to_string_lossy().into_owned())
                .or_insert(Node::Dir(Meta::root(0o755)));
            parent = p.parent();
        }
        key
    }

    /// Writes the archive (uncompressed newc) to `out`.
    pub fn write(&self, out: &mut impl Write) -> Result<()> {
        let mut offset = 0usize;
        // A key sorts after every one of its prefixes, so parents come first.
        for (ino, (name, node)) in self.nodes.iter().enumerate() {
            let mut owner = (0, 0);
            let (mode, data, rdev): (u32, Cow<[u8]>, _) = match node {
                Node::Dir(meta) => {
                    owner = meta.owner;
                    (S_IFDIR | meta.perm, Cow::Borrowed(&[]), (0, 0))
                }
                Node::File { content, meta } => {
                    owner = meta.owner;
                    let data = match content {
                        Content::Bytes(b) => Cow::Borrowed(b.as_slice()),
                        Content::Host(p) => Cow::Owned(
                            std::fs::read(p)
                                .with_context(|| format!("reading {} for /{name}", p.display()))?,
                        ),
                    };
                    (S_IFREG | meta.perm, data, (0, 0))
                }
                Node::Symlink(target) => {
                    (S_IFLNK | 0o777, Cow::Borrowed(target.as_bytes()), (0, 0))
                }
                Node::CharDev { major, minor } => {
                    (S_IFCHR | 0o600, Cow::Borrowed(&[]), (*major, *minor))
                }
            };
            let nlink = if matches!(node, Node::Dir(_)) { 2 } else { 1 };
            let entry = Entry {
                ino: ino as u32 + 1,
                mode,
                owner,
                nlink,
                rdev,
            };
            offset += write_entry(out, &entry, name, &data)?;
        }
        let trailer = Entry {
            ino: 0,
            mode: 0,
            owner: (0, 0),
            nlink: 1,
            rdev: (0, 0),
        };
        offset += write_entry(out, &trailer, "TRAILER!!!", &[])?;
        // The kernel does not need it, but cpio tools expect 512-byte blocks.
        out.write_all(&vec![0; (512 - offset % 512) % 512])?;
        Ok(())
    }
}

/// The header fields of one entry that vary.
struct Entry {
    ino: u32,
    mode: u32,
    owner: (u32, u32),
    nlink: u32,
    rdev: (u32, u32),
}

/// Writes one header + name + data, each padded to 4 bytes; returns the bytes written.
fn write_entry(out: &mut impl Write, e: &Entry, name: &str, data: &[u8]) -> Result<usize> {
    let (ino, mode, nlink, rdev) = (e.ino, e.mode, e.nlink, e.rdev);
    let fields = [
        ino,
        mode,
        e.owner.0,
        e.owner.1,
        nlink,
        0, // mtime: reproducible archives
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    let mut header = String::from("070701");
    for f in fields {
        header.push_str(&format!("{f:08x}"));
    }
    let mut written = 0;
    for chunk in [header.as_bytes(), name.as_bytes(), &[0]] {
        out.write_all(chunk)?;
        written += chunk.len();
    }
    written += pad(out, written)?;
    out.write_all(data)?;
    written += data.len() + pad(out, data.len())?;
    Ok(written)
}

fn pad(out: &mut impl Write, len: usize) -> Result<usize> {
    let n = (4 - len % 4) % 4;
    out.write_all(&[0; 3][..n])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, rdev, data) of an entry.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// The entries of newc bytes.
    fn read_back(mut bytes: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let field = |h: &[u8], i: usize| {
            u32::from_str_radix(std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                .unwrap()
        };
        let total = bytes.len();
        loop {
            let start = total - bytes.len();
            assert_eq!(start % 4, 0, "entry not 4-byte aligned");
            assert_eq!(&bytes[..6], b"070701");
            let h = &bytes[..110];
            let (mode, size, namesize) = (field(h, 1), field(h, 6) as usize, field(h, 11) as usize);
            let rdev = (field(h, 9), field(h, 10));
            let name = String::from_utf8(bytes[110..110 + namesize - 1].to_vec()).unwrap();
            assert_eq!(bytes[110 + namesize - 1], 0);
            let data_start = (110 + namesize).div_ceil(4) * 4;
            let data = bytes[data_start..data_start + size].to_vec();
            bytes = &bytes[(data_start + size).div_ceil(4) * 4..];
            if name == "TRAILER!!!" {
                break;
            }
            entries.push((name, mode, rdev, data));
        }
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(total % 512, 0);
        entries
    }

    #[test]
    fn round_trip() {
        let mut a = Archive::default();
        a.file("/bin/busybox", Content::Bytes(b"elf".to_vec()), 0o755);
        a.symlink("/bin/sh", "busybox");
        a.symlink("/bin/busybox", "ignored: exists");
        a.char_dev("/dev/console", 5, 1);
        a.file("/init", Content::Bytes(b"#!/bin/sh\n".to_vec()), 0o755);
        a.dir("/proc");
        let mut out = Vec::new();
        a.write(&mut out).unwrap();

        let entries = read_back(&out);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "dev",
                "dev/console",
                "init",
                "proc"
            ]
        );
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!(entries[1].1, S_IFREG | 0o755);
        assert_eq!(entries[1].3, b"elf");
        assert_eq!(entries[2].1, S_IFLNK | 0o777);
        assert_eq!(entries[2].3, b"busybox");
        assert_eq!(entries[4].1, S_IFCHR | 0o600);
        assert_eq!(entries[4].2, (5, 1));
        assert_eq!(entries[5].3, b"#!/bin/sh\n");
    }

    #[test]
    fn deep_parents_come_first() {
        let mut a = Archive::default();
        a.file(
            "/lib/x86_64-linux-gnu/libc.so.6",
            Content::Bytes(vec![1]),
            0o644,
        );
        a.file("/lib-x", Content::Bytes(vec![2]), 0o644);
        assert!(a.contains("/lib/x86_64-linux-gnu"));
        let mut out = Vec::new();
        a.write(&mut out).unwrap();
        let names: Vec<String> = read_back(&out).into_iter().map(|e| e.0).collect();
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(pos("lib") < pos("lib/x86_64-linux-gnu"));
        assert!(pos("lib/x86_64-linux-gnu") < pos("lib/x86_64-linux-gnu/libc.so.6"));
    }

    #[test]
    fn a_host_tree_keeps_modes_and_links() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = std::env::temp_dir().join(format!("brisk-cpio-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(dir.join("usr/bin/su"), b"elf").unwrap();
        std::fs::set_permissions(
            dir.join("usr/bin/su"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        symlink("usr/bin", dir.join("bin")).unwrap();
        let mut a = Archive::default();
        a.tree(&dir).unwrap();
        let mut out = Vec::new();
        a.write(&mut out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let entries = read_back(&out);
        let get = |n: &str| entries.iter().find(|e| e.0 == n).unwrap();
        assert_eq!(get("tmp").1, S_IFDIR | 0o1777);
        assert_eq!(get("usr/bin/su").1, S_IFREG | 0o4755);
        assert_eq!(get("usr/bin/su").3, b"elf");
        assert_eq!(get("bin").1, S_IFLNK | 0o777);
        assert_eq!(get("bin").3, b"usr/bin");
        assert!(
            entries.iter().position(|e| e.0 == "usr")
                < entries.iter().position(|e| e.0 == "usr/bin/su")
        );
    }
}
