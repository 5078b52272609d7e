//! [`CoreSpec`]: what the operator asked for with `--cores`, parsed and checked for shape (not
//! yet against the machine; [`plan`](crate::plan) does that).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The most shards a store node runs; also the longest core list accepted.
pub const MAX_SHARDS: usize = 256;

/// The largest core number accepted: Linux's largest `NR_CPUS` (8192) minus one.
pub const MAX_CORE_ID: usize = 8191;

/// Longest piece of bad input quoted back in an error.
const QUOTED_INPUT_MAX_CHARS: usize = 64;

/// What the operator asked for: how many shards, and on which cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSpec {
    /// Let [`plan`](crate::plan) decide from the available cores.
    Auto,
    /// This many shards (1 to [`MAX_SHARDS`]); pinned when the machine has a core to spare.
    Count(usize),
    /// One shard pinned to each of these cores, in this order.
    List(Vec<usize>),
}

impl FromStr for CoreSpec {
    type Err = Error;

    /// Parses `auto` (any case), a shard count such as `4`, or a list of cores and inclusive
    /// ranges such as `0,2,4-7`. A bare number is a count; one core is written as a range,
    /// `3-3`. Spaces around the whole text and around list items are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(invalid(s, "it is empty"));
        }
        if text.eq_ignore_ascii_case("auto") {
            return Ok(CoreSpec::Auto);
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let count = text.parse::<usize>().map_err(|_| {
                invalid(
                    s,
                    format!(
                        "shard count {} is too large (at most {MAX_SHARDS})",
                        quote(text)
                    ),
                )
            })?;
            if !(1..=MAX_SHARDS).contains(&count) {
                return Err(invalid(
                    s,
                    format!("shard count {count} is out of range (1 to {MAX_SHARDS})"),
                ));
            }
            return Ok(CoreSpec::Count(count));
        }
        parse_list(s, text).map(CoreSpec::List)
    }
}

impl fmt::Display for CoreSpec {
    /// Writes the text [`FromStr`] reads back into the same spec: `auto`, `4`, `0,2,4-7`
    /// (a one-core list as `3-3`, since a bare `3` is a count).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreSpec::Auto => f.write_str("auto"),
            CoreSpec::Count(count) => write!(f, "{count}"),
            CoreSpec::List(cores) if cores.len() == 1 => write!(f, "{0}-{0}", cores[0]),
            CoreSpec::List(cores) => f.write_str(&format_core_list(cores)),
        }
    }
}

/// The error for `input` (the whole `--cores` text), saying what is wrong with it.
fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidCoreSpec {
        input: quote(input),
        reason: reason.into(),
    }
}

/// Parses `0,2,4-7` (`text`, the trimmed `input`) into `[0, 2, 4, 5, 6, 7]`, keeping the
/// written order.
fn parse_list(input: &str, text: &str) -> Result<Vec<usize>, Error> {
    let mut cores: Vec<usize> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let shown = quote(item);
        if item.is_empty() {
            return Err(invalid(
                input,
                "the list has an empty item (a comma at either end or two in a row)",
            ));
        }
        let (first, last) = match item.split_once('-') {
            Some((start, end)) => {
                let start = start.trim();
                let end = end.trim();
                if start.is_empty() {
                    return Err(invalid(
                        input,
                        format!("`{shown}` has no first core (core numbers are not negative)"),
                    ));
                }
                if end.is_empty() {
                    return Err(invalid(input, format!("range `{shown}` has no last core")));
                }
                let (first, last) = (parse_core(input, start)?, parse_core(input, end)?);
                if first > last {
                    return Err(invalid(
                        input,
                        format!("range `{shown}` runs backwards; write it as `{last}-{first}`"),
                    ));
                }
                (first, last)
            }
            None => {
                let core = parse_core(input, item)?;
                (core, core)
            }
        };
        // Checked before expanding, so `0-8191` cannot build a huge list.
        let count = cores.len() + (last - first + 1);
        if count > MAX_SHARDS {
            return Err(invalid(
                input,
                format!("the list names more than {MAX_SHARDS} cores, the most shards a node runs"),
            ));
        }
        for core in first..=last {
            if cores.contains(&core) {
                return Err(invalid(
                    input,
                    format!("core {core} is listed more than once"),
                ));
            }
            cores.push(core);
        }
    }
    Ok(cores)
}

/// Parses one core number of `input`: decimal digits only, at most [`MAX_CORE_ID`].
fn parse_core(input: &str, text: &str) -> Result<usize, Error> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            input,
            format!("`{}` is not a core number", quote(text)),
        ));
    }
    match text.parse::<usize>() {
        Ok(core) if core <= MAX_CORE_ID => Ok(core),
        _ => Err(invalid(
            input,
            format!(
                "core {} is beyond the largest core number Linux supports ({MAX_CORE_ID})",
                quote(text)
            ),
        )),
    }
}

/// Bad input as quoted in an error: at most 64 characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTED_INPUT_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Writes cores as a list with ascending runs folded into ranges: `[0,1,2,3,6]` → `0-3,6`.
/// The order is kept, so the text parses back into the same list.
pub(crate) fn format_core_list(cores: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cores.len() {
        let mut j = i;
        while j + 1 < cores.len() && cores[j + 1] == cores[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            out.push_str(&format!("{}-{}", cores[i], cores[j]));
        } else {
            out.push_str(&cores[i].to_string());
        }
        i = j + 1;
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<CoreSpec, Error> {
        s.parse()
    }

    #[test]
    fn good_input_parses() {
        assert_eq!(parse("auto").unwrap(), CoreSpec::Auto);
        assert_eq!(parse(" AUTO ").unwrap(), CoreSpec::Auto);
        assert_eq!(parse("4").unwrap(), CoreSpec::Count(4));
        assert_eq!(parse("1").unwrap(), CoreSpec::Count(1));
        assert_eq!(parse("256").unwrap(), CoreSpec::Count(256));
        assert_eq!(
            parse("0,2,4-7").unwrap(),
            CoreSpec::List(vec![0, 2, 4, 5, 6, 7])
        );
        assert_eq!(parse("3-3").unwrap(), CoreSpec::List(vec![3]));
        assert_eq!(parse("5,1").unwrap(), CoreSpec::List(vec![5, 1]));
        assert_eq!(parse(" 8 - 9 , 1 ").unwrap(), CoreSpec::List(vec![8, 9, 1]));
        assert_eq!(
            parse("8191-8191").unwrap(),
            CoreSpec::List(vec![MAX_CORE_ID])
        );
    }

    #[test]
    fn garbage_is_rejected_with_the_accepted_forms() {
        for bad in [
            "",
            "   ",
            "-1",
            "3-1",
            "a",
            "0,,1",
            ",",
            "0,",
            ",0",
            "1-",
            "-",
            "0-1-2",
            "0",
            "257",
            "99999999999999999999999",
            "1.5",
            "+1",
            "0x3",
            "auto,1",
            "autox",
            "1,1",
            "0-3,2",
            "8192-8192",
            "0-300",
            "٣-٣",
            "1 2",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                matches!(err, Error::InvalidCoreSpec { .. }),
                "{bad:?}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("`auto`") && msg.contains("`4`") && msg.contains("`0,2,4-7`"),
                "{bad:?}: {msg}"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let reason = |s: &str| match parse(s).unwrap_err() {
            Error::InvalidCoreSpec { reason, .. } => reason,
            other => panic!("{other}"),
        };
        assert!(reason("").contains("empty"));
        assert!(reason("-1").contains("not negative"));
        assert!(reason("3-1").contains("`1-3`"));
        assert!(reason("a").contains("`a` is not a core number"));
        assert!(reason("0,,1").contains("empty item"));
        assert!(reason("0").contains("out of range"));
        assert!(reason("1,1").contains("core 1 is listed more than once"));
        assert!(reason("0-300").contains("more than 256"));
    }

    #[test]
    fn long_bad_input_is_cut_in_the_message() {
        for long in [
            "x".repeat(10_000),
            "9".repeat(10_000),
            format!("1-{}", "9".repeat(10_000)),
            format!("{}-1", "-".repeat(10_000)),
        ] {
            let msg = parse(&long).unwrap_err().to_string();
            assert!(msg.len() < 600, "{}", msg.len());
        }
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            CoreSpec::Auto,
            CoreSpec::Count(7),
            CoreSpec::List(vec![3]),
            CoreSpec::List(vec![0, 2, 4, 5, 6, 7]),
            CoreSpec::List(vec![5, 6, 1, 2]),
        ] {
            assert_eq!(parse(&spec.to_string()).unwrap(), spec);
        }
        assert_eq!(
            CoreSpec::List(vec![0, 2, 4, 5, 6, 7]).to_string(),
            "0,2,4-7"
        );
    }

    #[test]
    fn format_core_list_folds_runs() {
        assert_eq!(format_core_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(format_core_list(&[4]), "4");
        assert_eq!(format_core_list(&[]), "none");
        assert_eq!(format_core_list(&[3, 2, 1]), "3,2,1");
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(s in any::<String>()) {
            let _ = s.parse::<CoreSpec>();
        }

        #[test]
        fn parse_never_panics_on_spec_like_strings(s in "[0-9,\\- a-zA-Z]{0,24}") {
            if let Ok(spec) = s.parse::<CoreSpec>() {
                // Whatever parses is within bounds and prints back to itself.
                match &spec {
                    CoreSpec::Auto => {}
                    CoreSpec::Count(n) => prop_assert!((1..=MAX_SHARDS).contains(n)),
                    CoreSpec::List(cores) => {
                        prop_assert!(!cores.is_empty() && cores.len() <= MAX_SHARDS);
                        prop_assert!(cores.iter().all(|&c| c <= MAX_CORE_ID));
                    }
                }
                prop_assert_eq!(spec.to_string().parse::<CoreSpec>().unwrap(), spec);
            }
        }

        #[test]
        fn lists_round_trip(cores in proptest::collection::hash_set(0usize..=MAX_CORE_ID, 1..40)) {
            let spec = CoreSpec::List(cores.into_iter().collect());
            prop_assert_eq!(spec.to_string().parse::<CoreSpec>().unwrap(), spec);
        }
    }
}
