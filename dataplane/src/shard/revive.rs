//! A shard taking over what a shard of an earlier data-plane process served
//! (`crate::keep`): its segments under the same ids, its object index, its port.

use mc_hugepages::RegionOptions;
use mc_schema::agent::{SegmentInfo, SegmentKind};
use tracing::info;

use super::ShardConfig;
use crate::DataplaneError;
use crate::index::Index;
use crate::keep::{KeptSegment, KeptSource, ShardMemory};
use crate::segment::SegmentMem;

/// A segment mapped again, with what the shard reported for it and, for a named file, the
/// path and offset it maps.
pub(super) struct Adopted {
    pub(super) info: SegmentInfo,
    pub(super) seg: SegmentMem,
    pub(super) file: Option<(String, u64)>,
}

/// What a shard starts from when it takes over: its start-up segment, the port to bind,
/// its index and its other segments.
pub(super) struct Revived {
    pub(super) first: SegmentMem,
    pub(super) port: u16,
    pub(super) index: Index,
    pub(super) others: Vec<Adopted>,
}

fn broken(shard: usize, why: String) -> DataplaneError {
    DataplaneError::Revive { shard, reason: why }
}

/// Maps `memory` again for the shard `cfg` describes.
pub(super) fn take_over(cfg: &ShardConfig, memory: ShardMemory) -> Result<Revived, DataplaneError> {
    let index = Index::open(
        &format!("mc-index-{}", cfg.index),
        memory.index.records,
        memory.index.keys,
    )?;
    let mut first = None;
    let mut others = Vec::new();
    for kept in memory.segments {
        let adopted = map_again(cfg, kept)?;
        if adopted.info.kind == SegmentKind::Startup {
            first = Some(adopted);
        } else {
            others.push(adopted);
        }
    }
    let first = first.ok_or_else(|| broken(cfg.index, "no start-up segment was kept".into()))?;
    let port = first
        .info
        .endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| {
            broken(
                cfg.index,
                format!("kept endpoint {:?} names no port", first.info.endpoint),
            )
        })?;
    info!(
        shard = cfg.index,
        segment_id = first.seg.id,
        port,
        segments = others.len() + 1,
        index_entries = index.len(),
        "taking over the memory of the previous data plane"
    );
    Ok(Revived {
        first: first.seg,
        port,
        index,
        others,
    })
}

fn map_again(cfg: &ShardConfig, kept: KeptSegment) -> Result<Adopted, DataplaneError> {
    let KeptSegment { info, source } = kept;
    let opts = RegionOptions {
        name: info.name.clone(),
        ..cfg.region.clone()
    };
    let (seg, file) = match source {
        KeptSource::Memfd(fd) => (SegmentMem::from_memfd(info.segment_id, fd, &opts)?, None),
        KeptSource::File { path, offset_bytes } => {
            let size = usize::try_from(info.size_bytes)
                .map_err(|_| broken(cfg.index, format!("segment {} too large", info.name)))?;
            let seg = SegmentMem::from_file_again(
                info.segment_id,
                std::path::Path::new(&path),
                offset_bytes,
                size,
                &opts,
            )?;
            (seg, Some((path, offset_bytes)))
        }
    };
    if seg.size_bytes() != info.size_bytes {
        return Err(broken(
            cfg.index,
            format!(
                "segment {} holds {} bytes, {} were reported",
                info.name,
                seg.size_bytes(),
                info.size_bytes
            ),
        ));
    }
    Ok(Adopted { info, seg, file })
}
