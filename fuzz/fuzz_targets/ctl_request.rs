//! Any bytes on the control socket: the decoder answers with a request or an error, never a
//! panic; a decoded `set` or `apply` then goes through the same all-or-nothing validation the
//! running controller uses, which either refuses it or yields tunables the BPF side can take
//! (checked independently of that validation, in oracle.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scx_brisk::control::socket::{read_request, Request};
use scx_brisk::control::policy_file::PolicyFile;
use scx_brisk::control::settings::{Settings, Source};
use scx_brisk::control::tunables::Value;

mod oracle;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = read_request(data) else {
        return;
    };
    let before = Settings::default();
    let next = match req {
        Request::Set { pairs } => {
            let changes: Vec<(String, Value)> =
                pairs.into_iter().map(|(k, v)| (k, Value::Str(v))).collect();
            before.with(&changes, Source::Ctl)
        }
        Request::Apply { path, text } => PolicyFile::parse(&path, &text).and_then(|p| p.settings()),
        Request::Show | Request::Snapshot => return,
    };
    if let Ok(next) = next {
        oracle::assert_bpf_safe(&next.tunables);
    }
});
