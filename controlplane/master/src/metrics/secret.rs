//! The write secret's families (`crate::secret`), read from its counters when `/metrics` is
//! scraped.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::state::sample;
use crate::secret::WriteSecrets;

/// How one family reads its value.
type Read = fn(&WriteSecrets) -> f64;

/// Name, type, help and reader of every family.
const FAMILIES: [(&str, MetricType, &str, Read); 3] = [
    (
        "master_write_secret_rotations_total",
        MetricType::COUNTER,
        "Switches of the write-token signing secret to a new one read from --cluster_secret_file.",
        |s| s.rotations_total() as f64,
    ),
    (
        "master_write_secret_reload_errors_total",
        MetricType::COUNTER,
        "Reloads of --cluster_secret_file that found it unreadable or too short (the secret stayed).",
        |s| s.reload_errors_total() as f64,
    ),
    (
        "master_write_secret_rotation_pending",
        MetricType::GAUGE,
        "1 while a new write secret is being handed to the nodes before signing switches to it.",
        |s| u8::from(s.rotating()) as f64,
    ),
];

/// A collector over [`FAMILIES`].
pub(super) struct SecretCollector {
    secrets: Arc<WriteSecrets>,
    descs: Vec<Desc>,
}

impl SecretCollector {
    /// Reads `secrets` at every scrape.
    pub(super) fn new(secrets: Arc<WriteSecrets>) -> SecretCollector {
        let descs = FAMILIES
            .iter()
            .map(|(name, _, help, _)| {
                Desc::new(name.to_string(), help.to_string(), vec![], HashMap::new())
                    .expect("the write secret family names are valid")
            })
            .collect();
        SecretCollector { secrets, descs }
    }
}

impl Collector for SecretCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        FAMILIES
            .iter()
            .zip(&self.descs)
            .map(|((_, kind, _, read), desc)| {
                let mut f = MetricFamily::default();
                f.set_name(desc.fq_name.clone());
                f.set_help(desc.help.clone());
                f.set_field_type(*kind);
                f.set_metric(vec![sample(*kind, read(&self.secrets))]);
                f
            })
            .collect()
    }
}
