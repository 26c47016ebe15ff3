//! Policy files (`scheduler-policies/*.toml`): one flat TOML table of settings keys
//! (see `settings::keys`) plus an optional `description`. A file is a whole profile: keys it
//! does not name take their defaults. Every error names the file and line.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::control::settings::{self, Settings, Source};
use crate::control::tunables::Value;

/// Policy files are a few hundred bytes; anything much larger is a mistake.
pub const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    /// The path as given, for messages and the `policy` source.
    pub path: String,
    pub description: Option<String>,
    /// key, value, line
    pub entries: Vec<(String, Value, usize)>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn value_of(v: &toml::Value) -> Value {
    match v {
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::String(s) => Value::Str(s.clone()),
        toml::Value::Float(_) => Value::Other("a float"),
        toml::Value::Datetime(_) => Value::Other("a date"),
        toml::Value::Array(_) => Value::Other("an array"),
        toml::Value::Table(_) => Value::Other("a table"),
    }
}

/// A policy file sets how a running scheduler (root's) treats every task, and scx_brisk
/// re-reads it on SIGHUP: only root or the user running scx_brisk may own it, and nobody else
/// may write it.
fn check_owner(name: &str, uid: u32, mode: u32, euid: u32) -> Result<()> {
    if mode & 0o022 != 0 {
        bail!(
            "policy file {name} is writable by group or others (mode {:o}): whoever can write it \
             could change the running scheduler; `chmod go-w {name}` first",
            mode & 0o7777
        );
    }
    if uid != 0 && uid != euid {
        bail!(
            "policy file {name} belongs to uid {uid}, not to root or to you (uid {euid}): its \
             owner could change the running scheduler; `chown root {name}` first"
        );
    }
    Ok(())
}

impl PolicyFile {
    /// Reads and parses a policy file (refused if others than root or the caller can write it).
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).with_context(|| format!("policy file {name}"))?;
        if meta.is_dir() {
            bail!("policy file {name} is a directory");
        }
        check_owner(&name, meta.uid(), meta.mode(), unsafe { libc::geteuid() })?;
        if meta.len() > MAX_BYTES {
            bail!(
                "policy file {name} is {} bytes; policy files are at most {MAX_BYTES} bytes",
                meta.len()
            );
        }
        let mut text = String::new();
        std::fs::File::open(path)
            .with_context(|| format!("policy file {name}"))?
            .take(MAX_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("policy file {name}: not readable as UTF-8 text"))?;
        Self::parse(&name, &text)
    }

    /// Parses policy file text; `path` is only used in messages.
    pub fn parse(path: &str, text: &str) -> Result<Self> {
        if text.len() as u64 > MAX_BYTES {
            bail!("policy file {path} is larger than {MAX_BYTES} bytes");
        }
        let table: BTreeMap<String, toml::Spanned<toml::Value>> =
            toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| line_of(text, s.start));
                let msg = e.message().trim().to_string();
                match line {
                    Some(l) => anyhow!("{path}:{l}: {msg}"),
                    None => anyhow!("{path}: {msg}"),
                }
            })?;
        let keys = settings::keys();
        let mut entries = Vec::new();
        let mut description = None;
        for (key, v) in &table {
            let line = line_of(text, v.span().start);
            if key == "description" {
                match v.get_ref() {
                    toml::Value::String(s) => description = Some(s.clone()),
                    _ => bail!("{path}:{line}: description must be a string"),
                }
                continue;
            }
            if !keys.contains(&key.as_str()) {
                bail!(
                    "{path}:{line}: unknown key {key:?}; keys: description, {}",
                    keys.join(", ")
                );
            }
            entries.push((key.clone(), value_of(v.get_ref()), line));
        }
        entries.sort_by_key(|e| e.2);
        Ok(Self {
            path: path.to_string(),
            description,
            entries,
        })
    }

    /// The settings this file describes: defaults, then the file's keys (each checked, an
    /// error names its line), then the cross-field rules.
    pub fn settings(&self) -> Result<Settings> {
        let source = Source::Policy(self.path.clone());
        let mut s = Settings::default();
        for (key, value, line) in &self.entries {
            s.set(key, value, &source)
                .map_err(|e| anyhow!("{}:{line}: {e:#}", self.path))?;
        }
        s.tunables
            .validate()
            .map_err(|e| anyhow!("{}: {e:#}", self.path))?;
        s.last_change = source;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::settings::Mode;

    fn shipped() -> Vec<std::path::PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scheduler-policies");
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_shipped_policy_parses_and_is_valid() {
        let files = shipped();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
            .collect();
        for want in ["balanced", "interactive", "throughput", "auto"] {
            assert!(
                names.contains(&want.to_string()),
                "{want}.toml missing: {names:?}"
            );
        }
        for f in &files {
            let p = PolicyFile::load(f).unwrap();
            assert!(p.description.is_some(), "{}: no description", p.path);
            p.settings().unwrap();
        }
    }

    /// Each shipped file is a profile a user reads: every setting in it says why it is there,
    /// and every tunable and the mode are spelled out (nothing silently left to a default;
    /// target_p99_us only matters to auto mode).
    #[test]
    fn every_shipped_policy_sets_and_comments_every_key() {
        for f in shipped() {
            let text = std::fs::read_to_string(&f).unwrap();
            let mut keys = crate::control::tunables::keys();
            keys.push("mode");
            if text.contains("mode = \"auto\"") {
                keys.push("target_p99_us");
            }
            for key in keys {
                let line = text
                    .lines()
                    .find(|l| l.split('=').next().map(str::trim) == Some(key))
                    .unwrap_or_else(|| panic!("{}: {key} not set", f.display()));
                assert!(line.contains('#'), "{}: {key} has no comment", f.display());
            }
        }
    }

    #[test]
    fn balanced_is_the_default() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scheduler-policies");
        let p = PolicyFile::load(&dir.join("balanced.toml")).unwrap();
        let s = p.settings().unwrap();
        assert_eq!(s.tunables, Settings::default().tunables);
        assert_eq!(s.mode, Mode::Fixed);
    }

    #[test]
    fn values_and_lines() {
        let text = "description = \"x\"\n\nslice_us = 6000\nwakeup_preempt = false\nmode = \"auto\"\ntarget_p99_us = 900\n";
        let p = PolicyFile::parse("t.toml", text).unwrap();
        assert_eq!(p.entries[0], ("slice_us".into(), Value::Int(6000), 3));
        let s = p.settings().unwrap();
        assert_eq!(s.tunables.slice_us, 6000);
        assert_eq!(s.tunables.wakeup_preempt, 0);
        assert_eq!((s.mode, s.target_p99_us), (Mode::Auto, 900));
        assert_eq!(s.sources["slice_us"], Source::Policy("t.toml".into()));
        assert_eq!(s.sources["burst_cap_us"], Source::Default);
    }

    /// Broken files: each error names the file and the line.
    #[test]
    fn broken_files_name_file_and_line() {
        for (text, want) in [
            (
                "slice_us = 3000\nslise_us = 4\n",
                "t.toml:2: unknown key \"slise_us\"",
            ),
            (
                "\nslice_us = \"fast\"\n",
                "t.toml:2: slice_us = \"fast\" is not a whole number",
            ),
            (
                "\n\nslice_us = -5\n",
                "t.toml:3: slice_us = -5us is out of range",
            ),
            (
                "slice_us = 1.5\n",
                "t.toml:1: slice_us must be a whole number of microseconds, not a float",
            ),
            (
                "slice_us = nan\n",
                "t.toml:1: slice_us must be a whole number",
            ),
            ("slice_us = 99999999999999999999\n", "t.toml:1:"),
            (
                "slice_us = 100001\n",
                "t.toml:1: slice_us = 100001us is out of range: allowed 100..=100000us",
            ),
            (
                "wakeup_preempt = 1\n",
                "t.toml:1: wakeup_preempt = 1 is not a boolean: use true or false",
            ),
            ("mode = \"turbo\"\n", "t.toml:1: mode = \"turbo\""),
            (
                "[slice_us]\nx = 1\n",
                "t.toml:1: slice_us must be a whole number of microseconds, not a table",
            ),
            (
                "a = { b = { c = { d = 1 } } }\n",
                "t.toml:1: unknown key \"a\"",
            ),
            ("slice_us = 3000\nslice_us = 4000\n", "t.toml:2:"),
            ("slice_us = \n", "t.toml:1:"),
            (
                "description = 5\n",
                "t.toml:1: description must be a string",
            ),
            (
                "slice_us = 1000\nslice_min_us = 2000\n",
                "t.toml: slice_min_us = 2000us is larger than slice_us",
            ),
        ] {
            let res = PolicyFile::parse("t.toml", text).and_then(|p| p.settings());
            let msg = format!("{:#}", res.unwrap_err());
            assert!(
                msg.starts_with(want),
                "{text:?}: got {msg:?}, want {want:?}..."
            );
        }
    }

    #[test]
    fn deeply_nested_values_are_refused_without_overflowing_the_stack() {
        // All within the 64 KiB size limit, so the parser itself meets the depth.
        let arrays = |d: usize| format!("x = {}{}\n", "[".repeat(d), "]".repeat(d));
        let tables = |d: usize| format!("x = {}1{}\n", "{ a = ".repeat(d), " }".repeat(d));
        for (depth, text) in [
            (100, arrays(100)),
            (32_000, arrays(32_000)),
            (100, tables(100)),
            (7_000, tables(7_000)),
        ] {
            let msg = format!("{:#}", PolicyFile::parse("t.toml", &text).unwrap_err());
            assert!(msg.starts_with("t.toml:"), "depth {depth}: {msg}");
        }
    }

    #[test]
    fn unreadable_inputs_are_refused_clearly() {
        let dir = std::env::temp_dir().join(format!("brisk-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let msg = format!("{:#}", PolicyFile::load(&dir).unwrap_err());
        assert!(msg.contains("is a directory"), "{msg}");
        let missing = dir.join("missing.toml");
        let msg = format!("{:#}", PolicyFile::load(&missing).unwrap_err());
        assert!(
            msg.contains("missing.toml") && msg.contains("No such file"),
            "{msg}"
        );
        let big = dir.join("big.toml");
        std::fs::write(&big, "# x\n".repeat(3_000_000)).unwrap();
        let msg = format!("{:#}", PolicyFile::load(&big).unwrap_err());
        assert!(msg.contains("at most 65536 bytes"), "{msg}");
        let bin = dir.join("bin.toml");
        std::fs::write(&bin, [0xffu8, 0xfe, 0x00]).unwrap();
        let msg = format!("{:#}", PolicyFile::load(&bin).unwrap_err());
        assert!(msg.contains("UTF-8"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_others_can_write_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("brisk-policy-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.toml");
        std::fs::write(&f, "slice_us = 5000\n").unwrap();
        for (mode, ok) in [(0o644, true), (0o600, true), (0o664, false), (0o646, false)] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let res = PolicyFile::load(&f);
            assert_eq!(res.is_ok(), ok, "mode {mode:o}: {res:?}");
            if !ok {
                let msg = format!("{:#}", res.unwrap_err());
                assert!(msg.contains("writable by group or others"), "{msg}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        // Owners: root and the caller only.
        assert!(check_owner("p", 0, 0o644, 1000).is_ok());
        assert!(check_owner("p", 1000, 0o644, 1000).is_ok());
        let msg = format!("{:#}", check_owner("p", 1001, 0o644, 0).unwrap_err());
        assert!(msg.contains("belongs to uid 1001"), "{msg}");
    }
}
