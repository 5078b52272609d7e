//! `mc-topo`: print the topology and core plan of this machine or of a sysfs tree
//! (`mc_tools::topo`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = mc_schema::units::normalize_flags(std::env::args());
    let cli = match mc_tools::topo::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match mc_tools::topo::run(&cli) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mc-topo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
