//! `mooncake_master`: parses flags, sets up logging and runs the master.

#![forbid(unsafe_code)]

use std::sync::Mutex;

/// mimalloc rather than glibc's malloc: the master holds millions of small allocations
/// (keys, replica lists) and frees them in bulk (adoption, dropping a node), where glibc
/// spent a fifth of the time consolidating and unlinking chunks (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cfg = mc_master::MasterConfig::from_args();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    match &cfg.log_dir {
        Some(dir) => {
            let (file, path) = mc_master::logging::open_log_file(std::path::Path::new(dir))
                .map_err(|e| anyhow::anyhow!("cannot open a log file in --log_dir={dir}: {e}"))?;
            eprintln!("mooncake_master: logging to {}", path.display());
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init();
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
    // `FAILPOINTS=name=actions;...` turns failpoints on (builds with `--features failpoints`).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    if let Err(e) = mc_master::run(cfg) {
        // One line that says what to fix; the message already carries its cause.
        eprintln!("mooncake_master: {e}");
        std::process::exit(1);
    }
    Ok(())
}
