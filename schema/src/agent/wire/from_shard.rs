//! Codec of [`FromShard`]: one `FromShardMsg` table whose union holds the variant.

use flatbuffers::{ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};

use super::{Fbb, check_key, dec_segment, enc_segment, fb, missing, text};
use crate::SchemaError;
use crate::agent::{FromShard, INVENTORY_CHUNK};
use crate::msg::node_index::{
    dec_dropped, dec_entry, dec_offloaded, dec_promoted, enc_dropped_vec, enc_entries,
    enc_offloaded_vec, enc_promoted_vec,
};

/// Builds `msg` into `fbb` (finished).
pub(super) fn encode(fbb: &mut Fbb<'_>, msg: &FromShard) {
    let (body_type, body) = enc_body(fbb, msg);
    let root = fb::FromShardMsg::create(
        fbb,
        &fb::FromShardMsgArgs {
            body_type,
            body: Some(body),
        },
    );
    fbb.finish(root, None);
}

fn enc_body(fbb: &mut Fbb<'_>, msg: &FromShard) -> (fb::FromShardBody, WIPOffset<UnionWIPOffset>) {
    use fb::FromShardBody as B;
    match msg {
        FromShard::Segment(s) => {
            let segment = Some(enc_segment(fbb, s));
            let off = fb::SegmentReport::create(fbb, &fb::SegmentReportArgs { segment });
            (B::SegmentReport, off.as_union_value())
        }
        FromShard::Mounted { request, segment } => {
            let segment = Some(enc_segment(fbb, segment));
            let args = fb::MountedArgs {
                request: *request,
                segment,
            };
            (B::Mounted, fb::Mounted::create(fbb, &args).as_union_value())
        }
        FromShard::MountFailed { request, reason } => {
            let reason = Some(fbb.create_string(reason));
            let args = fb::MountFailedArgs {
                request: *request,
                reason,
            };
            let off = fb::MountFailed::create(fbb, &args).as_union_value();
            (B::MountFailed, off)
        }
        &FromShard::Unmounted {
            request,
            segment_id,
            found,
        } => {
            let args = fb::UnmountedArgs {
                request,
                segment_id,
                found,
            };
            (
                B::Unmounted,
                fb::Unmounted::create(fbb, &args).as_union_value(),
            )
        }
        &FromShard::Drained { shard } => (
            B::Drained,
            fb::Drained::create(fbb, &fb::DrainedArgs { shard }).as_union_value(),
        ),
        &FromShard::Stopped { shard } => (
            B::Stopped,
            fb::Stopped::create(fbb, &fb::StoppedArgs { shard }).as_union_value(),
        ),
        FromShard::Metrics { request, text } => {
            let text = Some(fbb.create_vector(text));
            let args = fb::MetricsTextArgs {
                request: *request,
                text,
            };
            let off = fb::MetricsText::create(fbb, &args).as_union_value();
            (B::MetricsText, off)
        }
        &FromShard::Described { shard } => (
            B::Described,
            fb::Described::create(fbb, &fb::DescribedArgs { shard }).as_union_value(),
        ),
        &FromShard::Applied { shard, term, seq } => {
            let args = fb::AppliedArgs { shard, term, seq };
            (B::Applied, fb::Applied::create(fbb, &args).as_union_value())
        }
        FromShard::Hits { shard, keys } => {
            let v: Vec<_> = keys.iter().map(|k| fbb.create_string(k)).collect();
            let keys = Some(fbb.create_vector(&v));
            let args = fb::HitsArgs {
                shard: *shard,
                keys,
            };
            (B::Hits, fb::Hits::create(fbb, &args).as_union_value())
        }
        FromShard::Offloaded { shard, entries } => {
            let entries = Some(enc_offloaded_vec(fbb, entries));
            let args = fb::OffloadedArgs {
                shard: *shard,
                entries,
            };
            (
                B::Offloaded,
                fb::Offloaded::create(fbb, &args).as_union_value(),
            )
        }
        FromShard::Promoted { shard, entries } => {
            let entries = Some(enc_promoted_vec(fbb, entries));
            let args = fb::PromotedArgs {
                shard: *shard,
                entries,
            };
            (
                B::Promoted,
                fb::Promoted::create(fbb, &args).as_union_value(),
            )
        }
        FromShard::Dropped { shard, entries } => {
            let entries = Some(enc_dropped_vec(fbb, entries));
            let args = fb::DroppedArgs {
                shard: *shard,
                entries,
            };
            (B::Dropped, fb::Dropped::create(fbb, &args).as_union_value())
        }
        FromShard::Inventory {
            request,
            entries,
            last,
        } => {
            let entries = Some(enc_entries(fbb, entries));
            let args = fb::InventoryPartArgs {
                request: *request,
                entries,
                last: *last,
            };
            let off = fb::InventoryPart::create(fbb, &args).as_union_value();
            (B::InventoryPart, off)
        }
    }
}

/// Decodes every element of an optional vector of tables, checking each element's key.
fn dec_vec<'a, T, U>(
    v: Option<Vector<'a, ForwardsUOffset<T>>>,
    dec: impl Fn(T) -> U,
    key: impl Fn(&U) -> &str,
) -> Result<Vec<U>, SchemaError>
where
    T: flatbuffers::Follow<'a, Inner = T> + 'a,
{
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    v.iter()
        .map(|e| {
            let u = dec(e);
            check_key(key(&u))?;
            Ok(u)
        })
        .collect()
}

/// The message a verified `FromShardMsg` holds.
pub(super) fn decode(m: fb::FromShardMsg<'_>) -> Result<FromShard, SchemaError> {
    use fb::FromShardBody as B;
    Ok(match m.body_type() {
        B::SegmentReport => {
            let b = m
                .body_as_segment_report()
                .ok_or_else(|| missing("segment"))?;
            FromShard::Segment(dec_segment(b.segment())?)
        }
        B::Mounted => {
            let b = m.body_as_mounted().ok_or_else(|| missing("mounted"))?;
            FromShard::Mounted {
                request: b.request(),
                segment: dec_segment(b.segment())?,
            }
        }
        B::MountFailed => {
            let b = m
                .body_as_mount_failed()
                .ok_or_else(|| missing("mount_failed"))?;
            FromShard::MountFailed {
                request: b.request(),
                reason: text(b.reason(), "failure reason")?,
            }
        }
        B::Unmounted => {
            let b = m.body_as_unmounted().ok_or_else(|| missing("unmounted"))?;
            FromShard::Unmounted {
                request: b.request(),
                segment_id: b.segment_id(),
                found: b.found(),
            }
        }
        B::Drained => FromShard::Drained {
            shard: m
                .body_as_drained()
                .ok_or_else(|| missing("drained"))?
                .shard(),
        },
        B::Stopped => FromShard::Stopped {
            shard: m
                .body_as_stopped()
                .ok_or_else(|| missing("stopped"))?
                .shard(),
        },
        B::MetricsText => {
            let b = m.body_as_metrics_text().ok_or_else(|| missing("metrics"))?;
            FromShard::Metrics {
                request: b.request(),
                text: b.text().map(|v| v.bytes().to_vec()).unwrap_or_default(),
            }
        }
        B::Described => FromShard::Described {
            shard: m
                .body_as_described()
                .ok_or_else(|| missing("described"))?
                .shard(),
        },
        B::Applied => {
            let b = m.body_as_applied().ok_or_else(|| missing("applied"))?;
            FromShard::Applied {
                shard: b.shard(),
                term: b.term(),
                seq: b.seq(),
            }
        }
        B::Hits => {
            let b = m.body_as_hits().ok_or_else(|| missing("hits"))?;
            let keys = b
                .keys()
                .map(|v| {
                    v.iter()
                        .map(|k| check_key(k).map(|()| k.to_string()))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            FromShard::Hits {
                shard: b.shard(),
                keys,
            }
        }
        B::Offloaded => {
            let b = m.body_as_offloaded().ok_or_else(|| missing("offloaded"))?;
            FromShard::Offloaded {
                shard: b.shard(),
                entries: dec_vec(b.entries(), dec_offloaded, |e| &e.key)?,
            }
        }
        B::Promoted => {
            let b = m.body_as_promoted().ok_or_else(|| missing("promoted"))?;
            FromShard::Promoted {
                shard: b.shard(),
                entries: dec_vec(b.entries(), dec_promoted, |e| &e.key)?,
            }
        }
        B::Dropped => {
            let b = m.body_as_dropped().ok_or_else(|| missing("dropped"))?;
            FromShard::Dropped {
                shard: b.shard(),
                entries: dec_vec(b.entries(), dec_dropped, |e| &e.key)?,
            }
        }
        B::InventoryPart => {
            let b = m
                .body_as_inventory_part()
                .ok_or_else(|| missing("inventory"))?;
            let n = b.entries().map_or(0, |v| v.len());
            if n > INVENTORY_CHUNK {
                return Err(SchemaError::Invalid(format!(
                    "inventory part of {n} entries exceeds {INVENTORY_CHUNK}"
                )));
            }
            FromShard::Inventory {
                request: b.request(),
                entries: dec_vec(b.entries(), dec_entry, |e| &e.key)?,
                last: b.last(),
            }
        }
        other => {
            return Err(SchemaError::Invalid(format!(
                "unknown shard to agent message type {}",
                other.0
            )));
        }
    })
}
