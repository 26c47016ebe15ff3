//! brisk-vm: boot a sched_ext kernel in qemu (software emulation) and run scx_brisk or its
//! integration tests inside it. Started by `stress-tests/vm`; see `brisk-vm --help`.

#[path = "../vm/mod.rs"]
mod vm;

use clap::Parser;

fn main() {
    let cli = vm::cli::Cli::parse();
    match vm::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
