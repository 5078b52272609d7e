//! The one error type of this crate. Every message names the cause and what to do about it.

use std::io;

/// Why a core spec could not be parsed or planned, a thread could not be pinned, or an
/// interface has no address to use.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `--cores` text is not one of the accepted forms.
    #[error(
        "invalid core spec {input:?}: {reason}; accepted forms are `auto`, a shard count from 1 to 256 such as `4`, or a list of cores and ranges such as `0,2,4-7`"
    )]
    InvalidCoreSpec {
        /// The text as given (cut to 64 characters).
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A shard count outside 1..=256.
    #[error(
        "{count} shards is out of range: ask for 1 to 256 shards (e.g. --cores=4) or use --cores=auto"
    )]
    ShardCountOutOfRange {
        /// The count asked for.
        count: usize,
    },

    /// A core list with more cores than there may be shards.
    #[error("the core list has {count} cores but a node runs at most 256 shards; list fewer cores")]
    TooManyCores {
        /// How many cores were listed.
        count: usize,
    },

    /// An empty core list.
    #[error(
        "the core list is empty; list at least one core (e.g. --cores=2-3) or use --cores=auto"
    )]
    EmptyCoreList,

    /// A core listed twice.
    #[error("core {core} is listed more than once; list each core once")]
    DuplicateCore {
        /// The repeated core.
        core: usize,
    },

    /// A listed core this process may not run on.
    #[error(
        "core {core} is not available to this process (available: {available}); list only available cores, or widen the affinity mask (`taskset`, cgroup cpuset)"
    )]
    CoreNotAvailable {
        /// The missing core.
        core: usize,
        /// The cores that are available, as a list such as `0-3,6`.
        available: String,
    },

    /// No cores at all to plan on.
    #[error(
        "no cores are available to plan on: this process's CPU affinity mask is empty; check `taskset -p <pid>` and the cgroup cpuset"
    )]
    NoCores,

    /// A core number beyond the largest the kernel supports.
    #[error(
        "core {core} is beyond the largest core number Linux supports ({max}); pick a core from `online_cpus()`"
    )]
    CoreOutOfRange {
        /// The core asked for.
        core: usize,
        /// The largest accepted core number.
        max: usize,
    },

    /// `sched_setaffinity(2)` refused to pin the thread.
    #[error(
        "could not pin this thread to core {core}: {source}; this process may run on cores {allowed}, so pick one of those (or widen the mask with `taskset` / the cgroup cpuset)"
    )]
    Pin {
        /// The core asked for.
        core: usize,
        /// The cores this process may run on, as a list such as `0-3,6`.
        allowed: String,
        /// What the kernel said.
        source: io::Error,
    },

    /// No network interface has the name asked for.
    #[error("network interface `{name}` does not exist; interfaces here: {known}")]
    NoSuchInterface {
        /// The name asked for.
        name: String,
        /// The interfaces that exist, comma separated.
        known: String,
    },

    /// The interface exists but has no IPv4 address.
    #[error(
        "network interface `{name}` has no IPv4 address; give it one or name another interface"
    )]
    NoIpv4 {
        /// The interface.
        name: String,
    },

    /// The kernel could not list the interfaces.
    #[error("cannot list network interfaces (getifaddrs): {source}")]
    Interfaces {
        /// What the kernel said.
        source: io::Error,
    },

    /// A sysfs file exists but could not be read or understood.
    #[error(
        "cannot read the topology from {path}: {reason}; check that sysfs is mounted (`mount -t sysfs sysfs /sys`) or point --sysfs_root at a sysfs tree"
    )]
    Sysfs {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },

    /// An environment variable has a value this crate does not accept.
    #[error("{var}={value:?} is not accepted: {reason}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value (cut to 64 characters).
        value: String,
        /// What to set instead.
        reason: String,
    },

    /// A NIC named by `MC_MS_FILTERS` or `--device_name` does not exist here.
    #[error(
        "NIC `{name}` ({source_of_name}) does not exist on this machine; NICs here: {known}. fix the name (MC_MS_FILTERS when discovering, --device_name with MC_MS_AUTO_DISC=0), or unset MC_MS_FILTERS to use every NIC found"
    )]
    NoSuchNic {
        /// The name asked for.
        name: String,
        /// Where the name came from.
        source_of_name: String,
        /// The NICs that exist, comma separated.
        known: String,
    },
}
