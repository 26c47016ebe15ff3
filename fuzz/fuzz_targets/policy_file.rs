//! Any text as a policy file: parsing and validation answer with a value or an error (which
//! names the file), never a panic, a hang or a stack overflow; whatever is accepted is safe for
//! the BPF side (checked independently of the validation, in oracle.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scx_brisk::control::policy_file::PolicyFile;

mod oracle;

fuzz_target!(|text: &str| {
    match PolicyFile::parse("fuzz.toml", text).and_then(|p| p.settings()) {
        Ok(settings) => oracle::assert_bpf_safe(&settings.tunables),
        Err(e) => assert!(format!("{e:#}").contains("fuzz.toml"), "{e:#}"),
    }
});
