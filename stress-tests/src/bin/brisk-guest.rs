//! brisk-guest: runs inside the sched_ext guest (see stress-tests/src/guest).

#[path = "../guest/mod.rs"]
mod guest;

use clap::Parser;

fn main() {
    match guest::main(guest::Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("brisk-guest: error: {e:#}");
            std::process::exit(1);
        }
    }
}
