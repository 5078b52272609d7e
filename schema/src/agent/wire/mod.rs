//! The agent ↔ shard messages as flatbuffers (`fbs/agent.fbs`), one message per ring
//! message (`mc-ring`, `docs/rings.md`).
//!
//! Decoding runs the flatbuffers verifier with bounded depth, table count and size
//! ([`MAX_AGENT_MESSAGE_BYTES`]), then checks enums, notice kinds and lengths: any byte
//! string yields a message or a [`WireError`], never a panic. Both processes of a node run
//! the same build, so unknown union types, enum values and notice kinds are errors rather
//! than skipped.

use flatbuffers::{FlatBufferBuilder, VerifierOptions};

use super::{FromShard, SegmentInfo, SegmentKind, ToShard};
use crate::SchemaError;
use crate::generated::mc::agent as fb;
use crate::limits::{MAX_AGENT_MESSAGE_BYTES, MAX_AGENT_TEXT_BYTES, MAX_KEY_LEN};

mod from_shard;
mod to_shard;

/// Errors of decoding agent ↔ shard messages: the crate's one error type.
pub type WireError = SchemaError;

/// Encodes an agent → shard message.
pub fn encode_to_shard(msg: &ToShard) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    to_shard::encode(&mut fbb, msg);
    fbb.finished_data().to_vec()
}

/// Decodes an agent → shard message.
pub fn decode_to_shard(bytes: &[u8]) -> Result<ToShard, WireError> {
    let m = flatbuffers::root_with_opts::<fb::ToShardMsg>(&verifier_opts(), bytes)
        .map_err(|e| SchemaError::Flatbuffer(Box::new(e)))?;
    to_shard::decode(m)
}

/// Encodes a shard → agent message.
pub fn encode_from_shard(msg: &FromShard) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    from_shard::encode(&mut fbb, msg);
    fbb.finished_data().to_vec()
}

/// Decodes a shard → agent message.
pub fn decode_from_shard(bytes: &[u8]) -> Result<FromShard, WireError> {
    let m = flatbuffers::root_with_opts::<fb::FromShardMsg>(&verifier_opts(), bytes)
        .map_err(|e| SchemaError::Flatbuffer(Box::new(e)))?;
    from_shard::decode(m)
}

fn verifier_opts() -> VerifierOptions {
    VerifierOptions {
        max_depth: 8,
        max_tables: 4_000_000,
        max_apparent_size: MAX_AGENT_MESSAGE_BYTES,
        ignore_missing_null_terminator: false,
    }
}

type Fbb<'b> = FlatBufferBuilder<'b>;

fn missing(what: &str) -> SchemaError {
    SchemaError::Invalid(format!("agent message without its {what}"))
}

/// A text field (path, name, reason), at most [`MAX_AGENT_TEXT_BYTES`].
fn text(s: Option<&str>, what: &str) -> Result<String, SchemaError> {
    let s = s.unwrap_or_default();
    if s.len() > MAX_AGENT_TEXT_BYTES {
        return Err(SchemaError::Invalid(format!(
            "{what} of {} bytes exceeds {MAX_AGENT_TEXT_BYTES}",
            s.len()
        )));
    }
    Ok(s.to_string())
}

/// Refuses a key longer than [`MAX_KEY_LEN`].
fn check_key(key: &str) -> Result<(), SchemaError> {
    if key.len() > MAX_KEY_LEN {
        return Err(SchemaError::Invalid(format!(
            "key of {} bytes exceeds {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

fn enc_kind(k: SegmentKind) -> fb::SegmentKindFb {
    match k {
        SegmentKind::Startup => fb::SegmentKindFb::Startup,
        SegmentKind::Allocated => fb::SegmentKindFb::Allocated,
        SegmentKind::Shm => fb::SegmentKindFb::Shm,
        SegmentKind::LocalDisk => fb::SegmentKindFb::LocalDisk,
        SegmentKind::Cxl => fb::SegmentKindFb::Cxl,
    }
}

fn dec_kind(k: fb::SegmentKindFb) -> Result<SegmentKind, SchemaError> {
    Ok(match k {
        fb::SegmentKindFb::Startup => SegmentKind::Startup,
        fb::SegmentKindFb::Allocated => SegmentKind::Allocated,
        fb::SegmentKindFb::Shm => SegmentKind::Shm,
        fb::SegmentKindFb::LocalDisk => SegmentKind::LocalDisk,
        fb::SegmentKindFb::Cxl => SegmentKind::Cxl,
        other => {
            return Err(SchemaError::Invalid(format!(
                "unknown segment kind {}",
                other.0
            )));
        }
    })
}

fn enc_segment<'b>(
    fbb: &mut Fbb<'b>,
    s: &SegmentInfo,
) -> flatbuffers::WIPOffset<fb::SegmentInfoFb<'b>> {
    let name = fbb.create_string(&s.name);
    let endpoint = fbb.create_string(&s.endpoint);
    fb::SegmentInfoFb::create(
        fbb,
        &fb::SegmentInfoFbArgs {
            shard: s.shard,
            segment_id: s.segment_id,
            name: Some(name),
            endpoint: Some(endpoint),
            size_bytes: s.size_bytes,
            kind: enc_kind(s.kind),
        },
    )
}

fn dec_segment(s: Option<fb::SegmentInfoFb<'_>>) -> Result<SegmentInfo, SchemaError> {
    let s = s.ok_or_else(|| missing("segment"))?;
    Ok(SegmentInfo {
        shard: s.shard(),
        segment_id: s.segment_id(),
        name: text(s.name(), "segment name")?,
        endpoint: text(s.endpoint(), "segment endpoint")?,
        size_bytes: s.size_bytes(),
        kind: dec_kind(s.kind())?,
    })
}

#[cfg(test)]
mod tests;
