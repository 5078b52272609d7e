//! Codec of [`ToShard`]: one `ToShardMsg` table whose union holds the variant.

use flatbuffers::{UnionWIPOffset, WIPOffset};

use super::{Fbb, fb, missing, text};
use crate::SchemaError;
use crate::agent::ToShard;
use crate::msg::node_index::{dec_notice, enc_notice};

/// Builds `msg` into `fbb` (finished).
pub(super) fn encode(fbb: &mut Fbb<'_>, msg: &ToShard) {
    let (body_type, body) = enc_body(fbb, msg);
    let root = fb::ToShardMsg::create(
        fbb,
        &fb::ToShardMsgArgs {
            body_type,
            body: Some(body),
        },
    );
    fbb.finish(root, None);
}

fn enc_body(fbb: &mut Fbb<'_>, msg: &ToShard) -> (fb::ToShardBody, WIPOffset<UnionWIPOffset>) {
    use fb::ToShardBody as B;
    match msg {
        ToShard::Describe => (
            B::Describe,
            fb::Describe::create(fbb, &fb::DescribeArgs {}).as_union_value(),
        ),
        ToShard::Drain => (
            B::Drain,
            fb::Drain::create(fbb, &fb::DrainArgs {}).as_union_value(),
        ),
        ToShard::Stop => (
            B::Stop,
            fb::Stop::create(fbb, &fb::StopArgs {}).as_union_value(),
        ),
        &ToShard::Mount {
            request,
            size_bytes,
        } => {
            let args = fb::MountArgs {
                request,
                size_bytes,
            };
            (B::Mount, fb::Mount::create(fbb, &args).as_union_value())
        }
        ToShard::MountShm {
            request,
            path,
            offset_bytes,
            size_bytes,
        } => {
            let path = fbb.create_string(path);
            let args = fb::MountShmArgs {
                request: *request,
                path: Some(path),
                offset_bytes: *offset_bytes,
                size_bytes: *size_bytes,
            };
            (
                B::MountShm,
                fb::MountShm::create(fbb, &args).as_union_value(),
            )
        }
        ToShard::MountCxl {
            request,
            path,
            size_bytes,
        } => {
            let path = fbb.create_string(path);
            let args = fb::MountCxlArgs {
                request: *request,
                path: Some(path),
                size_bytes: *size_bytes,
            };
            (
                B::MountCxl,
                fb::MountCxl::create(fbb, &args).as_union_value(),
            )
        }
        &ToShard::Unmount {
            request,
            segment_id,
        } => {
            let args = fb::UnmountArgs {
                request,
                segment_id,
            };
            (B::Unmount, fb::Unmount::create(fbb, &args).as_union_value())
        }
        ToShard::SetWriteSecret { secret } => {
            let secret = fbb.create_vector(secret);
            let args = fb::SetWriteSecretArgs {
                secret: Some(secret),
            };
            let off = fb::SetWriteSecret::create(fbb, &args).as_union_value();
            (B::SetWriteSecret, off)
        }
        &ToShard::SetTerm { term } => (
            B::SetTerm,
            fb::SetTerm::create(fbb, &fb::SetTermArgs { term }).as_union_value(),
        ),
        ToShard::Notices { seq, term, notices } => {
            let v: Vec<_> = notices.iter().map(enc_notice).collect();
            let notices = fbb.create_vector(&v);
            let args = fb::ApplyNoticesArgs {
                seq: *seq,
                term: *term,
                notices: Some(notices),
            };
            let off = fb::ApplyNotices::create(fbb, &args).as_union_value();
            (B::ApplyNotices, off)
        }
        &ToShard::Inventory { request } => {
            let args = fb::InventoryRequestArgs { request };
            let off = fb::InventoryRequest::create(fbb, &args).as_union_value();
            (B::InventoryRequest, off)
        }
        &ToShard::Metrics { request } => {
            let args = fb::MetricsRequestArgs { request };
            let off = fb::MetricsRequest::create(fbb, &args).as_union_value();
            (B::MetricsRequest, off)
        }
    }
}

/// The message a verified `ToShardMsg` holds.
pub(super) fn decode(m: fb::ToShardMsg<'_>) -> Result<ToShard, SchemaError> {
    use fb::ToShardBody as B;
    Ok(match m.body_type() {
        B::Describe => ToShard::Describe,
        B::Drain => ToShard::Drain,
        B::Stop => ToShard::Stop,
        B::Mount => {
            let b = m.body_as_mount().ok_or_else(|| missing("mount"))?;
            ToShard::Mount {
                request: b.request(),
                size_bytes: b.size_bytes(),
            }
        }
        B::MountShm => {
            let b = m.body_as_mount_shm().ok_or_else(|| missing("mount_shm"))?;
            ToShard::MountShm {
                request: b.request(),
                path: text(b.path(), "shm path")?,
                offset_bytes: b.offset_bytes(),
                size_bytes: b.size_bytes(),
            }
        }
        B::MountCxl => {
            let b = m.body_as_mount_cxl().ok_or_else(|| missing("mount_cxl"))?;
            ToShard::MountCxl {
                request: b.request(),
                path: text(b.path(), "cxl path")?,
                size_bytes: b.size_bytes(),
            }
        }
        B::Unmount => {
            let b = m.body_as_unmount().ok_or_else(|| missing("unmount"))?;
            ToShard::Unmount {
                request: b.request(),
                segment_id: b.segment_id(),
            }
        }
        B::SetWriteSecret => {
            let b = m
                .body_as_set_write_secret()
                .ok_or_else(|| missing("set_write_secret"))?;
            ToShard::SetWriteSecret {
                secret: b.secret().map(|v| v.bytes().to_vec()).unwrap_or_default(),
            }
        }
        B::SetTerm => ToShard::SetTerm {
            term: m
                .body_as_set_term()
                .ok_or_else(|| missing("set_term"))?
                .term(),
        },
        B::ApplyNotices => {
            let b = m
                .body_as_apply_notices()
                .ok_or_else(|| missing("notices"))?;
            let notices = b
                .notices()
                .map(|v| v.iter().map(|n| dec_notice(n).ok_or(n.kind())).collect())
                .transpose()
                .map_err(|k| SchemaError::Invalid(format!("unknown notice kind {k}")))?
                .unwrap_or_default();
            ToShard::Notices {
                seq: b.seq(),
                term: b.term(),
                notices,
            }
        }
        B::InventoryRequest => ToShard::Inventory {
            request: m
                .body_as_inventory_request()
                .ok_or_else(|| missing("inventory request"))?
                .request(),
        },
        B::MetricsRequest => ToShard::Metrics {
            request: m
                .body_as_metrics_request()
                .ok_or_else(|| missing("metrics request"))?
                .request(),
        },
        other => {
            return Err(SchemaError::Invalid(format!(
                "unknown agent to shard message type {}",
                other.0
            )));
        }
    })
}
