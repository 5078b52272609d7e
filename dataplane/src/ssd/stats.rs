//! Metrics of a shard's SSD tier (`mc_shard_ssd_*`), labelled like the other shard metrics.

use prometheus::{IntCounter, Opts, Registry};

use crate::stats::BytesGauge;

/// Counters and gauges of one shard's SSD record store (all zero without the tier).
#[derive(Debug, Clone)]
pub struct SsdStats {
    /// Bytes of live records (headers and padded payloads).
    pub bytes: BytesGauge,
    /// Live value records.
    pub objects: BytesGauge,
    /// The shard's share of `--ssd_quota_bytes`.
    pub quota_bytes: BytesGauge,
    /// Offloads waiting or being written.
    pub offload_queue_depth: BytesGauge,
    /// Slices made durable on SSD.
    pub offloads_total: IntCounter,
    /// Bytes of slices made durable on SSD.
    pub offload_bytes_total: IntCounter,
    /// Offloads that failed (I/O error, slice gone, quota reached).
    pub offload_errors_total: IntCounter,
    /// Offloads dropped because the queue was full.
    pub offload_dropped_total: IntCounter,
    /// Records read for clients.
    pub reads_total: IntCounter,
    /// Payload bytes read for clients.
    pub read_bytes_total: IntCounter,
    /// Records whose header or payload failed its checksum on read (never served).
    pub crc_failures_total: IntCounter,
    /// Records deleted (tombstone written and synced).
    pub deletes_total: IntCounter,
    /// Torn or corrupt records a start-up scan skipped (never served).
    pub torn_records_total: IntCounter,
    /// Records copied back into memory (promotion on hit).
    pub promotions_total: IntCounter,
    /// Records deleted to make room under the quota (disk eviction).
    pub evicted_total: IntCounter,
    /// Index checkpoints written.
    pub checkpoints_total: IntCounter,
    /// Index checkpoints refused at start (corrupt, torn, or not matching the files): the
    /// whole log was scanned instead.
    pub checkpoints_refused_total: IntCounter,
    /// Record writes that reused the DMA buffer of an earlier one (`ssd/buffers.rs`).
    pub write_buffers_reused_total: IntCounter,
    /// Record writes made durable by another write's `fdatasync` (group commit).
    pub shared_syncs_total: IntCounter,
    /// Records the last start took from the index checkpoint.
    pub checkpoint_records: BytesGauge,
    /// Records (values and tombstones) the last start read from the log after the
    /// checkpoint.
    pub scanned_records: BytesGauge,
}

impl SsdStats {
    /// Metrics with the shard's constant labels.
    pub fn new(shard: u32, endpoint: &str) -> SsdStats {
        let opts = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label("shard", shard.to_string())
                .const_label("endpoint", endpoint)
        };
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(opts(name, help)).expect("ssd counter definitions are valid")
        };
        let gauge = |name: &str, help: &str| {
            BytesGauge::with_opts(opts(name, help)).expect("ssd gauge definitions are valid")
        };
        SsdStats {
            bytes: gauge("mc_shard_ssd_bytes", "Bytes of live SSD records."),
            objects: gauge("mc_shard_ssd_objects", "Live value records on SSD."),
            quota_bytes: gauge("mc_shard_ssd_quota_bytes", "The shard's SSD quota."),
            offload_queue_depth: gauge(
                "mc_shard_ssd_offload_queue_depth",
                "Offloads waiting or being written.",
            ),
            offloads_total: counter("mc_shard_ssd_offloads_total", "Slices made durable on SSD."),
            offload_bytes_total: counter(
                "mc_shard_ssd_offload_bytes_total",
                "Bytes of slices made durable on SSD.",
            ),
            offload_errors_total: counter(
                "mc_shard_ssd_offload_errors_total",
                "Offloads that failed (I/O error, slice gone, quota reached).",
            ),
            offload_dropped_total: counter(
                "mc_shard_ssd_offload_dropped_total",
                "Offloads dropped because the offload queue was full.",
            ),
            reads_total: counter("mc_shard_ssd_reads_total", "SSD records read for clients."),
            read_bytes_total: counter(
                "mc_shard_ssd_read_bytes_total",
                "Payload bytes read from SSD for clients.",
            ),
            crc_failures_total: counter(
                "mc_shard_ssd_crc_failures_total",
                "SSD records refused on read for a checksum mismatch.",
            ),
            deletes_total: counter(
                "mc_shard_ssd_deletes_total",
                "SSD records deleted (tombstone written and synced).",
            ),
            evicted_total: counter(
                "mc_shard_ssd_evicted_total",
                "SSD records deleted to make room under the quota (--enable_disk_eviction).",
            ),
            promotions_total: counter(
                "mc_shard_ssd_promotions_total",
                "SSD records copied back into memory (promotion on hit).",
            ),
            torn_records_total: counter(
                "mc_shard_ssd_torn_records_total",
                "Torn or corrupt SSD records a start-up scan skipped (never served).",
            ),
            checkpoints_total: counter(
                "mc_shard_ssd_checkpoints_total",
                "SSD index checkpoints written.",
            ),
            checkpoints_refused_total: counter(
                "mc_shard_ssd_checkpoints_refused_total",
                "SSD index checkpoints refused at start (the whole log was scanned).",
            ),
            write_buffers_reused_total: counter(
                "mc_shard_ssd_write_buffers_reused_total",
                "SSD record writes that reused an earlier write's DMA buffer.",
            ),
            shared_syncs_total: counter(
                "mc_shard_ssd_shared_syncs_total",
                "SSD record writes made durable by another write's fdatasync (group commit).",
            ),
            checkpoint_records: gauge(
                "mc_shard_ssd_checkpoint_records",
                "Records the last start took from the SSD index checkpoint.",
            ),
            scanned_records: gauge(
                "mc_shard_ssd_scanned_records",
                "Records the last start read from the SSD log after the checkpoint.",
            ),
        }
    }

    /// Adds the families to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        for g in [
            &self.bytes,
            &self.objects,
            &self.quota_bytes,
            &self.offload_queue_depth,
            &self.checkpoint_records,
            &self.scanned_records,
        ] {
            registry.register(Box::new(g.clone()))?;
        }
        for c in [
            &self.offloads_total,
            &self.offload_bytes_total,
            &self.offload_errors_total,
            &self.offload_dropped_total,
            &self.reads_total,
            &self.read_bytes_total,
            &self.crc_failures_total,
            &self.deletes_total,
            &self.torn_records_total,
            &self.promotions_total,
            &self.evicted_total,
            &self.checkpoints_total,
            &self.checkpoints_refused_total,
            &self.write_buffers_reused_total,
            &self.shared_syncs_total,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        Ok(())
    }
}
