// The generated BPF skeleton of src/bpf/main.bpf.c.
include!(concat!(env!("OUT_DIR"), "/bpf_skel.rs"));
