//! `mcctl`: look at and manage a mooncake-rs cluster.
//!
//! Reads go to the master's admin HTTP port (they never grant leases), which the master
//! reports in its Ping answer ([`admin`]); `remove` goes through the master RPC like any
//! client. Tables by default, `--json` for scripts.

#![forbid(unsafe_code)]

mod admin;
mod tasks;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use mc_rpc::RpcClient;
use mc_schema::ErrorCode;
use mc_schema::handshake::{DEFAULT_CLUSTER_ID, Role};
use mc_schema::msg::{Request, ResponseBody};

use admin::Admin;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "mcctl",
    version,
    about = "Admin command line for a mooncake-rs cluster"
)]
struct Cli {
    /// Master RPC address.
    #[arg(long, default_value = "127.0.0.1:50051", global = true)]
    master: String,
    /// Master admin HTTP address [default: the master's host, at the admin port the master
    /// reports; port 9003 if it cannot be asked].
    #[arg(long, global = true)]
    admin: Option<String>,
    /// Cluster id for RPC calls.
    #[arg(long, default_value = DEFAULT_CLUSTER_ID, global = true)]
    cluster_id: String,
    /// JSON output instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Master health: role, readiness, leader.
    Health,
    /// Cluster overview: capacity, keys, clients, requests, evictions.
    Status,
    /// Mounted segments with their usage.
    Segments,
    /// Stored keys.
    Keys {
        /// Only keys matching this regex.
        #[arg(long)]
        regex: Option<String>,
        /// At most this many keys.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Where a key's replicas live.
    Query {
        /// The key.
        key: String,
    },
    /// Remove a key (a leased key needs --force).
    Remove {
        /// The key.
        key: String,
        /// Remove even if recently read.
        #[arg(long)]
        force: bool,
    },
    /// Copy and move tasks, newest first.
    Tasks {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One task, by id.
    Task {
        /// The id (32 hex digits, as `tasks` prints it).
        id: String,
    },
    /// Copy a key to a new replica on each target segment (a task).
    Copy {
        /// The key.
        key: String,
        /// Target segment names (`host:port`).
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Move a key's replica from one segment to another (a task).
    Move {
        /// The key.
        key: String,
        /// Segment holding the replica.
        source: String,
        /// Segment it goes to.
        target: String,
    },
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn run(cli: &Cli) -> Result<()> {
    // Only the reads need the admin port, so only they ask the master for it.
    let admin = || Admin::resolve(&cli.master, &cli.cluster_id, cli.admin.as_deref());
    match &cli.cmd {
        Cmd::Health => health(&admin(), cli.json),
        Cmd::Status => status(&admin(), cli.json),
        Cmd::Segments => segments(&admin(), cli.json),
        Cmd::Keys { regex, limit } => keys(&admin(), regex.as_deref(), *limit, cli.json),
        Cmd::Query { key } => query(&admin(), key, cli.json),
        Cmd::Remove { key, force } => remove(cli, key, *force),
        Cmd::Tasks { limit } => task_call(cli, Request::ListTasks { max: *limit }),
        Cmd::Task { id } => task_call(
            cli,
            Request::QueryTask {
                id: tasks::parse_id(id)?,
            },
        ),
        Cmd::Copy { key, targets } => task_call(
            cli,
            Request::CreateCopyTask {
                key: key.clone(),
                targets: targets.clone(),
            },
        ),
        Cmd::Move {
            key,
            source,
            target,
        } => task_call(
            cli,
            Request::CreateMoveTask {
                key: key.clone(),
                source: source.clone(),
                target: target.clone(),
            },
        ),
    }
}

fn task_call(cli: &Cli, req: Request) -> Result<()> {
    let v = tasks::call(&cli.master, &cli.cluster_id, &req)?;
    tasks::print(&v, cli.json);
    Ok(())
}

fn health(admin: &Admin, json: bool) -> Result<()> {
    let v = admin.get_json("/health")?;
    if json {
        println!("{v}");
        return Ok(());
    }
    for f in [
        "status",
        "role",
        "ha_state",
        "service_ready",
        "leader_address",
        "view_version",
    ] {
        println!("{f:<16} {}", v[f]);
    }
    Ok(())
}

fn status(admin: &Admin, json: bool) -> Result<()> {
    let v = admin.get_json("/health")?;
    let (_, summary) = admin.get("/metrics/summary")?;
    if json {
        println!("{v}");
        return Ok(());
    }
    let n = |f: &str| v[f].as_u64().unwrap_or(0);
    println!("role        {}", v["role"]);
    println!(
        "capacity    {} used of {}",
        human_bytes(n("allocated_bytes")),
        human_bytes(n("capacity_bytes"))
    );
    println!("keys        {}", n("keys"));
    println!("clients     {}", n("clients"));
    println!("segments    {}", n("segments"));
    println!("evicted     {} keys", n("evicted_keys_total"));
    println!("summary     {}", summary.trim());
    Ok(())
}

fn segments(admin: &Admin, json: bool) -> Result<()> {
    let v = admin.get_json("/get_segments_detail")?;
    if json {
        println!("{v}");
        return Ok(());
    }
    println!(
        "{:<24} {:<16} {:>12} {:>12} {:>6}",
        "segment", "host", "used", "capacity", "alloc"
    );
    for s in v["segments"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<16} {:>12} {:>12} {:>6}",
            s["name"].as_str().unwrap_or(""),
            s["host"].as_str().unwrap_or(""),
            human_bytes(s["used_bytes"].as_u64().unwrap_or(0)),
            human_bytes(s["capacity_bytes"].as_u64().unwrap_or(0)),
            if s["allocatable"] == true {
                "yes"
            } else {
                "no"
            }
        );
    }
    Ok(())
}

fn keys(admin: &Admin, regex: Option<&str>, limit: usize, json: bool) -> Result<()> {
    let mut path = format!("/get_all_keys?limit={limit}");
    if let Some(r) = regex {
        path.push_str("&regex=");
        path.push_str(&percent_encode(r));
    }
    let (status, body) = admin.get(&path)?;
    if status != 200 {
        bail!("{path}: HTTP {status}: {body}");
    }
    let keys: Vec<&str> = body.lines().collect();
    if json {
        println!("{}", serde_json::json!(keys));
    } else {
        keys.iter().for_each(|k| println!("{k}"));
    }
    Ok(())
}

fn query(admin: &Admin, key: &str, json: bool) -> Result<()> {
    let v = admin.get_json(&format!("/query_key?key={}", percent_encode(key)))?;
    if json {
        println!("{v}");
        return Ok(());
    }
    println!("key {key}: {} bytes", v["size"]);
    for (i, r) in v["replicas"].as_array().into_iter().flatten().enumerate() {
        for b in r["buffer_descriptors"].as_array().into_iter().flatten() {
            println!(
                "  replica {i}: {} offset {} size {}",
                b["transport_endpoint_"].as_str().unwrap_or(""),
                b["offset"],
                b["size"]
            );
        }
    }
    Ok(())
}

fn remove(cli: &Cli, key: &str, force: bool) -> Result<()> {
    let mut rpc = RpcClient::connect(
        &cli.master,
        Role::Tool,
        &cli.cluster_id,
        Duration::from_secs(2),
    )?;
    let r = rpc.call(
        &Request::Remove {
            keys: vec![key.to_string()],
            force,
        },
        Instant::now() + Duration::from_secs(10),
    )?;
    let code = match r.body {
        ResponseBody::Statuses(c) if r.status == 0 => c.first().copied().unwrap_or(-1),
        _ => r.status,
    };
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"key": key, "code": code, "removed": code == 0})
        );
    } else if code == 0 {
        println!("removed {key}");
    }
    if code != 0 {
        bail!("remove {key}: {}", ErrorCode::from_code(code));
    }
    Ok(())
}

/// Percent-encodes a query value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn main() {
    let cli = Cli::parse_from(mc_schema::units::normalize_flags(std::env::args()));
    if let Err(e) = run(&cli) {
        eprintln!("mcctl: {e:#}");
        std::process::exit(1);
    }
}
