//! Any text as a policy file: parsing and validation answer with a value or an error (which
//! names the file), never a panic, a hang or a stack overflow; whatever is accepted is within
//! every key's range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scx_brisk::policy_file::PolicyFile;

fuzz_target!(|text: &str| {
    match PolicyFile::parse("fuzz.toml", text).and_then(|p| p.settings()) {
        Ok(settings) => {
            // Accepted settings must pass the same validation the BPF side relies on.
            settings
                .tunables
                .validate()
                .expect("an accepted policy file produced invalid tunables");
        }
        Err(e) => assert!(format!("{e:#}").contains("fuzz.toml"), "{e:#}"),
    }
});
