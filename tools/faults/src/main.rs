//! `mc-faults [--json] [--quick] [--runs N] [--only NAME,...]`: runs the fault scenarios
//! and prints one row each; exits 1 if any row fails. `mc-faults writer ...` is the client
//! process the suite kills (see `mc_faults::writer`).

#![forbid(unsafe_code)]

use std::io::Write;

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("writer") {
        return mc_faults::writer::run(&mc_faults::writer::WriterArgs::parse(&args[1..])?);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: mc-faults [--json] [--quick] [--runs N] [--only NAME,...] [--list]");
        return Ok(());
    }
    let ctx = mc_faults::Ctx {
        quick: args.iter().any(|a| a == "--quick"),
        failpoints: cfg!(feature = "failpoints"),
    };
    let json = args.iter().any(|a| a == "--json");
    let runs: u32 = match value(&args, "--runs") {
        Some(v) => v.parse()?,
        None => ctx.pick(1, 3),
    };
    let only: Vec<&str> = value(&args, "--only")
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    let scenarios = mc_faults::all();
    if args.iter().any(|a| a == "--list") {
        for s in &scenarios {
            println!("{}", s.name);
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for sc in scenarios
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
    {
        eprintln!("mc-faults: {} ...", sc.name);
        let row = mc_faults::run_scenario(sc, &ctx, runs);
        if json {
            println!("{}", row.json());
            std::io::stdout().flush()?;
        } else {
            for w in &row.why {
                eprintln!("mc-faults: {}: {w}", sc.name);
            }
        }
        rows.push(row);
    }
    if !json {
        print!("{}", mc_faults::table(&rows));
    }
    if rows.iter().any(|r| !r.pass) {
        std::process::exit(1);
    }
    Ok(())
}
