//! `manifest.json`, written beside each snapshot's data file, and snapshot ids.
//!
//! A snapshot id is its UTC creation time, `YYYYMMDD_HHMMSS_mmm` (Mooncake's form), so ids
//! sort by age as plain strings. The manifest names the data file and carries its length
//! and CRC32C: a data file torn by a crash, or changed on disk, is refused before decoding.

use serde::{Deserialize, Serialize};

use crate::MasterError;

/// Name of the data file inside a snapshot directory.
pub const DATA_FILE: &str = "snapshot.bin";
/// Name of the manifest inside a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// What the manifest's `format` field says.
const FORMAT: &str = "mooncake-rs-master-snapshot";

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `mooncake-rs-master-snapshot`.
    pub format: String,
    /// Format version of the data file ([`super::content::VERSION`]).
    pub version: u32,
    /// The snapshot's id (its directory name).
    pub snapshot_id: String,
    /// The cluster it belongs to.
    pub cluster_id: String,
    /// Creation time, Unix milliseconds.
    pub created_unix_ms: u64,
    /// The master's term when it was taken.
    pub term: u64,
    /// Complete objects in it.
    pub objects: u64,
    /// Mounted segments in it.
    pub segments: u64,
    /// The data file's name.
    pub data_file: String,
    /// The data file's length.
    pub data_bytes: u64,
    /// CRC32C of the data file (`mc_schema::checksum`).
    pub data_crc32c: u32,
}

impl Manifest {
    /// The manifest of data file `data` with these counts.
    pub fn describe(
        id: &str,
        cluster_id: &str,
        (term, created_unix_ms): (u64, u64),
        (objects, segments): (u64, u64),
        data: &[u8],
    ) -> Manifest {
        Manifest {
            format: FORMAT.to_string(),
            version: super::content::VERSION,
            snapshot_id: id.to_string(),
            cluster_id: cluster_id.to_string(),
            created_unix_ms,
            term,
            objects,
            segments,
            data_file: DATA_FILE.to_string(),
            data_bytes: data.len() as u64,
            data_crc32c: mc_schema::checksum::crc32c(data),
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        v.push(b'\n');
        v
    }

    /// Parses and checks the manifest of snapshot `id`.
    ///
    /// # Errors
    /// [`MasterError::SnapshotManifest`] when it does not parse, is of another format or
    /// version, or names another snapshot.
    pub fn parse(id: &str, text: &[u8]) -> Result<Manifest, MasterError> {
        let bad = |reason: String| MasterError::SnapshotManifest {
            id: id.to_string(),
            reason,
        };
        let m: Manifest = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        if m.format != FORMAT || m.version != super::content::VERSION {
            return Err(bad(format!(
                "format `{}` version {} (this build reads `{FORMAT}` version {})",
                m.format,
                m.version,
                super::content::VERSION
            )));
        }
        if m.snapshot_id != id || m.data_file != DATA_FILE {
            return Err(bad(format!(
                "it names snapshot `{}` with data file `{}`",
                m.snapshot_id, m.data_file
            )));
        }
        Ok(m)
    }

    /// Checks `data` against the length and CRC32C recorded here.
    ///
    /// # Errors
    /// [`MasterError::SnapshotChecksum`] when either differs (a torn or altered file).
    pub fn verify(&self, data: &[u8]) -> Result<(), MasterError> {
        let crc = mc_schema::checksum::crc32c(data);
        if data.len() as u64 != self.data_bytes || crc != self.data_crc32c {
            return Err(MasterError::SnapshotChecksum {
                id: self.snapshot_id.clone(),
                bytes: data.len() as u64,
                expected_bytes: self.data_bytes,
                crc32c: crc,
                expected_crc32c: self.data_crc32c,
            });
        }
        Ok(())
    }
}

/// The id of a snapshot created at `unix_ms`: `YYYYMMDD_HHMMSS_mmm`, UTC.
pub fn id_at(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}_{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Whether `s` has the form of a snapshot id (`YYYYMMDD_HHMMSS_mmm`, digits elsewhere).
pub fn is_id(s: &str) -> bool {
    s.len() == 19
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 15 => b == b'_',
            _ => b.is_ascii_digit(),
        })
}

/// (year, month, day) of the `days`-th day after 1970-01-01, in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_utc_times_that_sort_by_age() {
        assert_eq!(id_at(0), "19700101_000000_000");
        // 2024-02-29 23:59:59.999 UTC.
        assert_eq!(id_at(1_709_251_199_999), "20240229_235959_999");
        assert_eq!(id_at(1_709_251_200_000), "20240301_000000_000");
        let ids: Vec<String> = [5u64, 1_000, 86_400_000, 1_709_251_200_000]
            .iter()
            .map(|&t| id_at(t))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|i| is_id(i)));
        for bad in [
            "",
            "20240301_000000_00",
            "20240301-000000_000",
            "2024030a_000000_000",
        ] {
            assert!(!is_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_manifest_checks_its_data() {
        let data = b"some snapshot bytes".to_vec();
        let m = Manifest::describe("20240301_000000_000", "c", (3, 7), (2, 1), &data);
        let back = Manifest::parse("20240301_000000_000", &m.to_json()).unwrap();
        assert_eq!(back, m);
        back.verify(&data).unwrap();
        let mut torn = data.clone();
        torn.pop();
        assert!(matches!(
            back.verify(&torn),
            Err(MasterError::SnapshotChecksum { .. })
        ));
        let mut flipped = data;
        flipped[3] ^= 1;
        assert!(back.verify(&flipped).is_err());
        assert!(Manifest::parse("20240301_000000_001", &m.to_json()).is_err());
        assert!(Manifest::parse("20240301_000000_000", b"{\"format\":").is_err());
    }
}
