//! Logging set-up: stderr by default; with `--log_dir`, every level goes to one file per
//! run, `mooncake_master.INFO.<YYYYMMDD-HHMMSS>.<pid>`, and the `mooncake_master.INFO`
//! symlink points at the newest (glog's layout, which operators' tooling expects).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Creates this run's log file and points the symlink at it; returns the file.
pub fn open_log_file(dir: &Path) -> std::io::Result<(File, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!(
        "mooncake_master.INFO.{}.{}",
        timestamp(secs),
        std::process::id()
    );
    let path = dir.join(&name);
    let file = File::options().create(true).append(true).open(&path)?;
    let link = dir.join("mooncake_master.INFO");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&name, &link)?;
    Ok((file, path))
}

/// `YYYYMMDD-HHMMSS` in UTC for Unix time `secs`.
pub fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(951_782_400), "20000229-000000");
        assert_eq!(timestamp(1_798_761_600 + 3_723), "20270101-010203");
    }
}
