//! Sizes, durations and flag spellings as Mooncake users write them.
//!
//! Sizes: a byte count or a number with `KB`, `MB`, `GB`, `TB` (powers of 1024, as in
//! Mooncake: `4GB` = 4 × 2^30), also `K`, `M`, `G`, `KiB`, ... case-insensitive.
//! Durations: a bare number takes the flag's unit; `ms`, `s`, `m`, `h` suffixes work anywhere.

use std::time::Duration;

use crate::SchemaError;

/// Parses a size such as `4GB`, `512MB`, `16777216`.
pub fn parse_size(s: &str) -> Result<u64, SchemaError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(SchemaError::NotASize { input: s.into() });
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => {
            return Err(SchemaError::UnknownSizeUnit {
                input: s.into(),
                unit: other.into(),
            });
        }
    };
    let value: f64 = num.parse().map_err(|_| SchemaError::SizeNotANumber {
        input: s.into(),
        number: num.into(),
    })?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(SchemaError::SizeOutOfRange { input: s.into() });
    }
    Ok(bytes as u64)
}

/// The unit a bare number means for a duration flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    /// Milliseconds (`*_ttl` flags).
    Millis,
    /// Seconds (`client_ttl`, `*_sec` flags).
    Seconds,
}

/// Parses `5000`, `5000ms`, `5s`, `30m`, `1h`; a bare number takes `unit`.
pub fn parse_duration(s: &str, unit: DurationUnit) -> Result<Duration, SchemaError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| SchemaError::NotADuration { input: s.into() })?;
    let ms = match (suffix.trim(), unit) {
        ("", DurationUnit::Millis) | ("ms", _) => Some(n),
        ("", DurationUnit::Seconds) | ("s", _) => n.checked_mul(1000),
        ("m", _) => n.checked_mul(60_000),
        ("h", _) => n.checked_mul(3_600_000),
        (other, _) => {
            return Err(SchemaError::UnknownDurationUnit {
                input: s.into(),
                unit: other.into(),
            });
        }
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| SchemaError::DurationOutOfRange { input: s.into() })
}

/// Rewrites command-line flags so both spellings users meet work: `--enable-ha` becomes
/// `--enable_ha` (only the name part before `=` changes; values are untouched).
pub fn normalize_flags<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    args.into_iter()
        .map(|a| match a.strip_prefix("--") {
            Some(rest) if !rest.is_empty() => {
                let (name, value) = match rest.find('=') {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                format!("--{}{}", name.replace('-', "_"), value)
            }
            _ => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GB").unwrap(), 4 << 30);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("512mb").unwrap(), 512 << 20);
        assert_eq!(parse_size("16777216").unwrap(), 16 << 20);
        assert_eq!(parse_size("1.5KB").unwrap(), 1536);
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("4XB").is_err());
        assert!(parse_size("GB").is_err());
    }

    #[test]
    fn durations() {
        let ms = DurationUnit::Millis;
        let s = DurationUnit::Seconds;
        assert_eq!(
            parse_duration("5000", ms).unwrap(),
            Duration::from_millis(5000)
        );
        assert_eq!(parse_duration("10", s).unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5s", ms).unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("30m", s).unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h", s).unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("250ms", s).unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_duration("5x", s).is_err());
        assert!(parse_duration("-5", s).is_err());
    }

    #[test]
    fn flag_spellings() {
        let v = normalize_flags(
            [
                "prog",
                "--enable-ha=true",
                "--rpc-port",
                "1",
                "--a_b=x-y",
                "-v",
                "--",
            ]
            .map(String::from),
        );
        assert_eq!(
            v,
            [
                "prog",
                "--enable_ha=true",
                "--rpc_port",
                "1",
                "--a_b=x-y",
                "-v",
                "--"
            ]
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,24}") {
            let _ = parse_size(&s);
            let _ = parse_duration(&s, DurationUnit::Seconds);
        }
    }
}
