//! [`plan`]: from a [`CoreSpec`] and the available cores to one placement per shard.

use crate::error::Error;
use crate::spec::{CoreSpec, MAX_SHARDS, format_core_list};

/// With this many available cores or fewer, `auto` runs one unpinned shard: pinning shards to
/// most of a small machine starves the agent, the REST endpoint and the kernel.
pub(crate) const AUTO_SMALL_MACHINE_CORES: usize = 4;

/// On larger machines `auto` leaves this many of the lowest cores unpinned for the agent, REST
/// and the OS.
pub(crate) const AUTO_RESERVED_CORES: usize = 2;

/// Where one shard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardPlacement {
    /// The shard's number, `0..shards.len()`.
    pub index: usize,
    /// The core to pin the shard's thread to, or `None` to leave it to the scheduler.
    pub core: Option<usize>,
    /// The NUMA node to bind the shard's segment memory to (`mbind`), or `None` to leave it
    /// to the kernel. [`plan`] knows no topology and leaves it `None`;
    /// [`plan_for`](crate::plan_for) fills it in.
    pub numa_node: Option<usize>,
}

/// Where every shard of a node runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePlan {
    /// One placement per shard, in shard order.
    pub shards: Vec<ShardPlacement>,
    /// Why the plan looks the way it does, in a sentence for the start-up log.
    pub reason: String,
}

/// Plans the shards of a node for `spec` on the `available` cores (usually
/// [`online_cpus`](crate::online_cpus); order and repeats do not matter).
///
/// - [`CoreSpec::Auto`]: on 4 cores or fewer, one unpinned shard; on more, one shard pinned to
///   each available core except the lowest two, which are kept for the agent, REST and the OS.
/// - [`CoreSpec::Count`]`(n)`: `n` from 1 to 256. With at least `n + 1` cores the shards are
///   pinned to distinct cores, skipping the lowest one (kept for the agent and the OS);
///   otherwise they run unpinned.
/// - [`CoreSpec::List`]: one shard pinned to each listed core, in list order; every core must
///   be available and listed once.
pub fn plan(spec: &CoreSpec, available: &[usize]) -> Result<CorePlan, Error> {
    let mut cores = available.to_vec();
    cores.sort_unstable();
    cores.dedup();
    if cores.is_empty() {
        return Err(Error::NoCores);
    }
    let plan = match spec {
        CoreSpec::Auto => plan_auto(&cores),
        CoreSpec::Count(count) => plan_count(*count, &cores)?,
        CoreSpec::List(list) => plan_list(list, &cores)?,
    };
    debug_assert!(!plan.shards.is_empty() && plan.shards.len() <= MAX_SHARDS);
    tracing::debug!(%spec, shards = plan.shards.len(), reason = %plan.reason, "core plan");
    Ok(plan)
}

/// `auto` on sorted, distinct, non-empty `cores`.
fn plan_auto(cores: &[usize]) -> CorePlan {
    if cores.len() <= AUTO_SMALL_MACHINE_CORES {
        return CorePlan {
            shards: unpinned(1),
            reason: format!(
                "{} cores available ({}); 4 cores or fewer: one unpinned shard leaves room for the agent and the OS",
                cores.len(),
                format_core_list(cores)
            ),
        };
    }
    let (kept, shard_cores) = cores.split_at(AUTO_RESERVED_CORES);
    // A node runs at most MAX_SHARDS shards; beyond that, cores stay with the scheduler.
    let shard_cores = &shard_cores[..shard_cores.len().min(MAX_SHARDS)];
    let mut reason = format!(
        "{} cores available: one shard pinned to each of cores {}; cores {} kept for the agent, REST and the OS",
        cores.len(),
        format_core_list(shard_cores),
        format_core_list(kept)
    );
    if AUTO_RESERVED_CORES + shard_cores.len() < cores.len() {
        reason.push_str(&format!(
            "; capped at {MAX_SHARDS} shards, the rest of the cores stay unpinned"
        ));
    }
    CorePlan {
        shards: pinned(shard_cores),
        reason,
    }
}

/// A shard count on sorted, distinct, non-empty `cores`.
fn plan_count(count: usize, cores: &[usize]) -> Result<CorePlan, Error> {
    if !(1..=MAX_SHARDS).contains(&count) {
        return Err(Error::ShardCountOutOfRange { count });
    }
    if count < cores.len() {
        let shard_cores = &cores[1..=count];
        return Ok(CorePlan {
            shards: pinned(shard_cores),
            reason: format!(
                "{count} shards pinned to cores {}; core {} left for the agent, REST and the OS",
                format_core_list(shard_cores),
                cores[0]
            ),
        });
    }
    Ok(CorePlan {
        shards: unpinned(count),
        reason: format!(
            "{count} shards on {} available cores ({}): pinning needs {} cores so one stays free for the agent and the OS, so the shards run unpinned",
            cores.len(),
            format_core_list(cores),
            count + 1
        ),
    })
}

/// A core list on sorted, distinct, non-empty `cores`.
fn plan_list(list: &[usize], cores: &[usize]) -> Result<CorePlan, Error> {
    if list.is_empty() {
        return Err(Error::EmptyCoreList);
    }
    if list.len() > MAX_SHARDS {
        return Err(Error::TooManyCores { count: list.len() });
    }
    let mut seen = list.to_vec();
    seen.sort_unstable();
    if let Some(pair) = seen.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::DuplicateCore { core: pair[0] });
    }
    if let Some(&core) = list.iter().find(|c| cores.binary_search(c).is_err()) {
        return Err(Error::CoreNotAvailable {
            core,
            available: format_core_list(cores),
        });
    }
    let mut reason = format!(
        "{} shards pinned to the listed cores {}",
        list.len(),
        format_core_list(list)
    );
    if list.len() == cores.len() {
        reason.push_str("; every available core has a shard, so the agent and the OS share them");
    }
    Ok(CorePlan {
        shards: pinned(list),
        reason,
    })
}

/// `count` shards with no pinning.
pub(crate) fn unpinned(count: usize) -> Vec<ShardPlacement> {
    (0..count)
        .map(|index| ShardPlacement {
            index,
            core: None,
            numa_node: None,
        })
        .collect()
}

/// One shard pinned to each of `cores`, in order.
pub(crate) fn pinned(cores: &[usize]) -> Vec<ShardPlacement> {
    cores
        .iter()
        .enumerate()
        .map(|(index, &core)| ShardPlacement {
            index,
            core: Some(core),
            numa_node: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cores_of(plan: &CorePlan) -> Vec<Option<usize>> {
        plan.shards.iter().map(|s| s.core).collect()
    }

    fn indices_are_in_order(plan: &CorePlan) -> bool {
        plan.shards.iter().enumerate().all(|(i, s)| s.index == i)
    }

    #[test]
    fn auto_on_small_machines_runs_one_unpinned_shard() {
        for n in 1..=4 {
            let available: Vec<usize> = (0..n).collect();
            let p = plan(&CoreSpec::Auto, &available).unwrap();
            assert_eq!(cores_of(&p), vec![None], "{n} cores");
            assert!(
                p.reason.contains(
                    "4 cores or fewer: one unpinned shard leaves room for the agent and the OS"
                ),
                "{}",
                p.reason
            );
        }
    }

    #[test]
    fn auto_on_larger_machines_pins_all_but_the_first_two_cores() {
        let p = plan(&CoreSpec::Auto, &[0, 1, 2, 3, 4]).unwrap();
        assert_eq!(cores_of(&p), vec![Some(2), Some(3), Some(4)]);
        assert!(indices_are_in_order(&p));
        assert!(p.reason.contains("cores 0-1 kept"), "{}", p.reason);

        // Unsorted, gappy affinity masks: the lowest two available cores are kept.
        let p = plan(&CoreSpec::Auto, &[9, 3, 5, 7, 11, 13, 5]).unwrap();
        assert_eq!(cores_of(&p), vec![Some(7), Some(9), Some(11), Some(13)]);
        assert!(p.reason.contains("cores 3,5 kept"), "{}", p.reason);
    }

    #[test]
    fn auto_caps_at_the_shard_limit() {
        let available: Vec<usize> = (0..300).collect();
        let p = plan(&CoreSpec::Auto, &available).unwrap();
        assert_eq!(p.shards.len(), MAX_SHARDS);
        assert_eq!(p.shards[0].core, Some(2));
        assert!(p.reason.contains("capped at 256"), "{}", p.reason);
    }

    #[test]
    fn count_pins_when_a_core_is_left_over() {
        let p = plan(&CoreSpec::Count(3), &[0, 1, 2, 3]).unwrap();
        assert_eq!(cores_of(&p), vec![Some(1), Some(2), Some(3)]);
        assert!(indices_are_in_order(&p));
        assert!(p.reason.contains("core 0 left"), "{}", p.reason);

        let p = plan(&CoreSpec::Count(1), &[4, 6]).unwrap();
        assert_eq!(cores_of(&p), vec![Some(6)]);
    }

    #[test]
    fn count_runs_unpinned_without_a_spare_core() {
        let p = plan(&CoreSpec::Count(2), &[0, 1]).unwrap();
        assert_eq!(cores_of(&p), vec![None, None]);
        assert!(indices_are_in_order(&p));
        assert!(p.reason.contains("unpinned"), "{}", p.reason);

        let p = plan(&CoreSpec::Count(8), &[0, 1]).unwrap();
        assert_eq!(p.shards.len(), 8);
        assert!(p.shards.iter().all(|s| s.core.is_none()));

        let p = plan(&CoreSpec::Count(1), &[0]).unwrap();
        assert_eq!(cores_of(&p), vec![None]);
    }

    #[test]
    fn count_out_of_range_is_rejected() {
        for count in [0, MAX_SHARDS + 1] {
            let err = plan(&CoreSpec::Count(count), &[0, 1]).unwrap_err();
            assert!(matches!(err, Error::ShardCountOutOfRange { .. }), "{err}");
            assert!(err.to_string().contains("1 to 256"), "{err}");
        }
    }

    #[test]
    fn list_pins_each_listed_core_in_order() {
        let p = plan(&CoreSpec::List(vec![3, 1]), &[0, 1, 2, 3]).unwrap();
        assert_eq!(cores_of(&p), vec![Some(3), Some(1)]);
        assert!(indices_are_in_order(&p));
        assert!(!p.reason.contains("share"), "{}", p.reason);

        let p = plan(&CoreSpec::List(vec![0, 1]), &[0, 1]).unwrap();
        assert_eq!(cores_of(&p), vec![Some(0), Some(1)]);
        assert!(p.reason.contains("share"), "{}", p.reason);
    }

    #[test]
    fn list_with_a_missing_core_names_it_and_the_available_set() {
        let err = plan(&CoreSpec::List(vec![1, 5]), &[0, 1, 2, 3, 6]).unwrap_err();
        assert!(
            matches!(err, Error::CoreNotAvailable { core: 5, ref available } if available == "0-3,6"),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("core 5") && msg.contains("0-3,6"), "{msg}");
    }

    #[test]
    fn bad_lists_are_rejected() {
        let err = plan(&CoreSpec::List(vec![1, 0, 1]), &[0, 1]).unwrap_err();
        assert!(matches!(err, Error::DuplicateCore { core: 1 }), "{err}");
        let err = plan(&CoreSpec::List(vec![]), &[0, 1]).unwrap_err();
        assert!(matches!(err, Error::EmptyCoreList), "{err}");
        let long: Vec<usize> = (0..=MAX_SHARDS).collect();
        let err = plan(&CoreSpec::List(long.clone()), &long).unwrap_err();
        assert!(matches!(err, Error::TooManyCores { .. }), "{err}");
    }

    #[test]
    fn no_available_cores_is_an_error() {
        for spec in [CoreSpec::Auto, CoreSpec::Count(1), CoreSpec::List(vec![0])] {
            assert!(matches!(plan(&spec, &[]), Err(Error::NoCores)));
        }
    }

    #[test]
    fn plan_works_on_this_machine() {
        let available = crate::online_cpus();
        let p = plan(&CoreSpec::Auto, &available).unwrap();
        assert!(!p.shards.is_empty());
        for shard in &p.shards {
            if let Some(core) = shard.core {
                assert!(available.contains(&core));
            }
        }
    }

    fn any_spec() -> impl Strategy<Value = CoreSpec> {
        prop_oneof![
            Just(CoreSpec::Auto),
            (0usize..300).prop_map(CoreSpec::Count),
            proptest::collection::vec(0usize..64, 0..12).prop_map(CoreSpec::List),
        ]
    }

    proptest! {
        #[test]
        fn plans_are_well_formed(
            spec in any_spec(),
            available in proptest::collection::vec(0usize..64, 0..40),
        ) {
            if let Ok(p) = plan(&spec, &available) {
                prop_assert!(!p.shards.is_empty() && p.shards.len() <= MAX_SHARDS);
                prop_assert!(indices_are_in_order(&p));
                prop_assert!(!p.reason.is_empty());
                let pinned: Vec<usize> = p.shards.iter().filter_map(|s| s.core).collect();
                // Either every shard is pinned or none is.
                prop_assert!(pinned.is_empty() || pinned.len() == p.shards.len());
                let mut distinct = pinned.clone();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), pinned.len());
                prop_assert!(pinned.iter().all(|c| available.contains(c)));
            }
        }
    }
}
