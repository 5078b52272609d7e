//! Stable fuzzing for every mooncake-rs decoder (`scripts/fuzz.sh`). See `engine` for the
//! loop, `mc_fuzz_targets` for what is fuzzed, `http` for requests against live processes.

pub mod engine;
pub mod http;
pub use mc_fuzz_targets as targets;
