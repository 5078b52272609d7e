//! Every input saved under `fuzz/regressions/<target>/` (a crash `scripts/fuzz.sh` once
//! found, now fixed) and every target's seeds run through the targets again, so a decoder
//! bug that was fixed stays fixed.

use std::path::Path;

#[test]
fn seeds_and_saved_inputs_pass_every_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for t in mc_fuzz_targets::all() {
        for seed in (t.seeds)() {
            (t.run)(&seed);
        }
        let Ok(files) = std::fs::read_dir(dir.join(t.name)) else {
            continue;
        };
        for f in files.flatten() {
            let data = std::fs::read(f.path()).unwrap();
            (t.run)(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} saved inputs");
}

#[test]
fn targets_are_named_uniquely() {
    let mut names: Vec<&str> = mc_fuzz_targets::all().iter().map(|t| t.name).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n);
}
