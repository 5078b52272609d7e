//! `mc-cluster`: start, check, break and stop a local mooncake-rs HA cluster
//! (`mc_tools::cluster`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mc_tools::cluster::cli::Cli::parse();
    match mc_tools::cluster::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, no backtrace.
            eprintln!("mc-cluster: {e:#}");
            ExitCode::FAILURE
        }
    }
}
