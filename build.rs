// Builds the BPF scheduler object and its Rust skeleton and the standalone probe object
// (scx_cargo's BpfBuilder wraps libbpf-cargo and brings the scx BPF headers and vmlinux.h),
// generates Rust bindings for the shared `intf.h`, and compiles the pure policy arithmetic
// (`policy.h`) for the host so that `cargo test` exercises the exact formulas the BPF side runs.
fn main() {
    scx_cargo::BpfBuilder::new()
        .expect("BPF build setup failed (is clang >= 16 installed? set BPF_CLANG=clang-19)")
        .enable_intf("src/bpf/intf.h", "bpf_intf.rs")
        .enable_skel("src/bpf/main.bpf.c", "bpf")
        .build()
        .expect("BPF build failed");
    // The latency probes alone (`scx_brisk probe`): a second object that loads without
    // sched_ext.
    scx_cargo::BpfBuilder::new()
        .expect("BPF build setup failed")
        .enable_skel("src/bpf/probe.bpf.c", "probe")
        .build()
        .expect("BPF build of the probe object failed");

    cc::Build::new()
        .file("src/bpf/policy_host.c")
        .include("src/bpf")
        .warnings(true)
        .compile("brisk_policy_host");
    for f in [
        "src/bpf/policy.h",
        "src/bpf/policy_host.c",
        "src/bpf/intf.h",
        "src/bpf/lat_hist.h",
        "src/bpf/lat_stamps.h",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
}
