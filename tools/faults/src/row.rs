//! One row of the fault table per scenario, printed as a table or as JSON lines.

use std::fmt::Write;

/// What one scenario measured over all its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Scenario name, e.g. `kill9_node_mid_put`.
    pub scenario: String,
    /// Runs made.
    pub runs: u32,
    /// Acknowledged objects that could not be read back (while a holder lives).
    pub lost: u64,
    /// Reads that returned bytes other than the ones written.
    pub wrong: u64,
    /// Longest time from the fault (or its end) until service was back, in seconds.
    pub recover_s: f64,
    /// Whether every run met the scenario's targets.
    pub pass: bool,
    /// Why the scenario did not run (its feature has not landed), if it did not.
    pub skipped: Option<String>,
    /// What failed, for the table's reader (not in the JSON line).
    pub why: Vec<String>,
}

impl Row {
    /// A scenario that was not run, and why.
    pub fn skipped(scenario: &str, reason: &str) -> Row {
        Row {
            scenario: scenario.into(),
            runs: 0,
            lost: 0,
            wrong: 0,
            recover_s: 0.0,
            pass: true,
            skipped: Some(reason.into()),
            why: Vec::new(),
        }
    }

    /// The JSON line: `{"scenario": "...", "runs": N, "lost": N, "wrong": N,
    /// "recover_s": X, "pass": true}`, or `{"scenario": "...", "skipped": "reason"}`.
    pub fn json(&self) -> String {
        let name = serde_json::to_string(&self.scenario).unwrap_or_default();
        match &self.skipped {
            Some(reason) => format!(
                "{{\"scenario\": {name}, \"skipped\": {}}}",
                serde_json::to_string(reason).unwrap_or_default()
            ),
            None => format!(
                "{{\"scenario\": {name}, \"runs\": {}, \"lost\": {}, \"wrong\": {}, \"recover_s\": {:.2}, \"pass\": {}}}",
                self.runs, self.lost, self.wrong, self.recover_s, self.pass
            ),
        }
    }
}

/// The human-readable table, one row per scenario, then what failed.
pub fn table(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$}  {:>4}  {:>4}  {:>5}  {:>9}  result",
        "scenario", "runs", "lost", "wrong", "recover_s"
    );
    for r in rows {
        let _ = match &r.skipped {
            Some(reason) => writeln!(
                out,
                "{:<w$}  {:>4}  {:>4}  {:>5}  {:>9}  skipped: {reason}",
                r.scenario, "-", "-", "-", "-"
            ),
            None => writeln!(
                out,
                "{:<w$}  {:>4}  {:>4}  {:>5}  {:>9.2}  {}",
                r.scenario,
                r.runs,
                r.lost,
                r.wrong,
                r.recover_s,
                if r.pass { "pass" } else { "FAIL" }
            ),
        };
    }
    for r in rows.iter().filter(|r| !r.why.is_empty()) {
        let _ = writeln!(out, "{}: {}", r.scenario, r.why.join("; "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_documented_shape() {
        let r = Row {
            scenario: "a\"b".into(),
            runs: 3,
            lost: 0,
            wrong: 1,
            recover_s: 1.234,
            pass: false,
            skipped: None,
            why: vec!["x".into()],
        };
        assert_eq!(
            r.json(),
            r#"{"scenario": "a\"b", "runs": 3, "lost": 0, "wrong": 1, "recover_s": 1.23, "pass": false}"#
        );
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["runs"], 3);
        let s = Row::skipped("disk_full", "no SSD tier");
        assert_eq!(
            s.json(),
            r#"{"scenario": "disk_full", "skipped": "no SSD tier"}"#
        );
        let t = table(&[r, s]);
        assert!(t.contains("FAIL") && t.contains("skipped: no SSD tier") && t.contains("a\"b: x"));
    }
}
