//! `mc-faults writer`: a client process the suite kills mid-put. It puts `--count` values
//! and prints `acked <key> <seed> <len>` after each acknowledged put. Built with failpoints,
//! it reads `FAILPOINTS` (e.g. `client::write::before_commit=2*off->sleep(60000)` holds the
//! third put between its acks and its commit).

use std::io::Write;

use mooncake_rs::{ReplicateConfig, Store, StoreConfig};

use crate::ledger::pattern;

/// What the writer is told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterArgs {
    /// Master address.
    pub master: String,
    /// Key prefix.
    pub prefix: String,
    /// Value length.
    pub len_bytes: usize,
    /// Puts to make.
    pub count: u64,
}

impl WriterArgs {
    /// Parses `--master A --prefix P --len N --count N`.
    pub fn parse(args: &[String]) -> anyhow::Result<WriterArgs> {
        let get = |flag: &str| -> anyhow::Result<String> {
            let i = args
                .iter()
                .position(|a| a == flag)
                .ok_or_else(|| anyhow::anyhow!("writer: {flag} is required"))?;
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("writer: {flag} needs a value"))
        };
        Ok(WriterArgs {
            master: get("--master")?,
            prefix: get("--prefix")?,
            len_bytes: get("--len")?.parse()?,
            count: get("--count")?.parse()?,
        })
    }
}

/// Runs the writer; returns when every put was made.
pub fn run(a: &WriterArgs) -> anyhow::Result<()> {
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let store = Store::connect(StoreConfig::new(&a.master))?;
    let mut out = std::io::stdout().lock();
    for n in 0..a.count {
        let key = format!("{}-{n}", a.prefix);
        if store
            .put(&key, &pattern(a.len_bytes, n), &ReplicateConfig::default())
            .is_ok()
        {
            writeln!(out, "acked {key} {n} {}", a.len_bytes)?;
            out.flush()?;
        }
    }
    Ok(())
}
