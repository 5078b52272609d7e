//! Generates Rust code for the flatbuffers schemas with the flatc built by the `flatc` crate
//! (Debian's flatc 2.0.8 emits code for an old, vulnerable runtime; see DEPENDENCIES.md).
//!
//! `fbs/agent.fbs` includes `fbs/master_rpc.fbs` (the node-index tables are shared), so one
//! `--gen-all` run emits both namespaces (`mc::proto`, `mc::agent`) into one file: separate
//! runs would make two distinct Rust types of each shared table.
use std::process::Command;

fn main() {
    let schemas = ["fbs/master_rpc.fbs", "fbs/agent.fbs"];
    for s in schemas {
        println!("cargo:rerun-if-changed={s}");
    }
    let out = std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo");
    let status = Command::new(flatc::flatc())
        .args(["--rust", "--gen-all", "-o", &out, "fbs/agent.fbs"])
        .status()
        .expect("flatc runs");
    assert!(status.success(), "flatc failed on {schemas:?}");
}
