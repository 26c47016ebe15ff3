// The generated BPF skeleton of src/bpf/probe.bpf.c (`scx_brisk probe`).
include!(concat!(env!("OUT_DIR"), "/probe_skel.rs"));
