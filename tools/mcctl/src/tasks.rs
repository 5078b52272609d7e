//! `mcctl tasks`, `task`, `copy` and `move`: copy and move tasks through the master RPC
//! (`docs/tasks.md`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mc_rpc::RpcClient;
use mc_schema::ErrorCode;
use mc_schema::handshake::Role;
use mc_schema::msg::{Request, ResponseBody, TaskInfo};

/// One call to the master; the tasks it answers with.
pub fn call(master: &str, cluster_id: &str, req: &Request) -> Result<Vec<TaskInfo>> {
    let mut rpc = RpcClient::connect(master, Role::Tool, cluster_id, Duration::from_secs(2))
        .with_context(|| format!("cannot reach the master at {master}"))?;
    let r = rpc.call(req, Instant::now() + Duration::from_secs(10))?;
    if r.status != 0 {
        bail!(
            "{}: {}: {}",
            req.op_name(),
            ErrorCode::from_code(r.status),
            r.message
        );
    }
    match r.body {
        ResponseBody::Tasks(v) => Ok(v),
        other => bail!("{}: unexpected answer {other:?}", req.op_name()),
    }
}

/// A task id as printed (32 hex digits) back to its value.
pub fn parse_id(s: &str) -> Result<u128> {
    u128::from_str_radix(s.trim(), 16).with_context(|| format!("{s:?} is not a task id"))
}

fn json(t: &TaskInfo) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{:032x}", t.id),
        "type": t.kind.name(),
        "status": t.state.name(),
        "key": t.key,
        "source": t.source,
        "targets": t.targets,
        "assigned_client": t.assigned_client,
        "attempts": t.attempts,
        "created_at_ms_epoch": t.created_ms,
        "last_updated_at_ms_epoch": t.updated_ms,
        "message": t.message,
    })
}

/// Prints tasks as a table, or a JSON array.
pub fn print(tasks: &[TaskInfo], as_json: bool) {
    if as_json {
        let v: Vec<_> = tasks.iter().map(json).collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    println!(
        "{:<32} {:<12} {:<10} {:<20} {:<40} message",
        "id", "type", "status", "key", "source -> targets"
    );
    for t in tasks {
        println!(
            "{:032x} {:<12} {:<10} {:<20} {:<40} {}",
            t.id,
            t.kind.name(),
            t.state.name(),
            t.key,
            format!("{} -> {}", t.source, t.targets.join(",")),
            t.message
        );
    }
}
