//! Put credit (`docs/why-fast-path.md`): space a client holds ahead of its puts, so a put
//! is a write and one commit. The codec of `PutCredit` and of its answer `CreditGrant`.

use flatbuffers::{UnionWIPOffset, WIPOffset};

use super::{
    Fbb, ReplicaDesc, Request, ResponseBody, dec_config, dec_put_end_items, dec_replicas,
    enc_config, enc_put_end_items, enc_replicas, missing, unknown_request,
};
use crate::SchemaError;
use crate::generated::mc::proto as fb;

/// Space allocated ahead for one put of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    /// The value size it holds room for, in bytes.
    pub size: u64,
    /// Where to write, one entry per replica, each slice with its write token.
    pub replicas: Vec<ReplicaDesc>,
    /// How long after the grant the master keeps it, in ms.
    pub ttl_ms: u64,
}

impl Credit {
    /// The credit's id: its first replica's first slice's generation (the generation a
    /// commit names).
    pub fn id(&self) -> u64 {
        self.replicas
            .first()
            .and_then(|r| r.slices.first())
            .map_or(0, |s| s.generation)
    }
}

/// Encodes a `PutCredit` (`None` for any other request).
pub(super) fn enc_request(
    fbb: &mut Fbb<'_>,
    req: &Request,
) -> Option<(fb::RequestBody, WIPOffset<UnionWIPOffset>)> {
    let Request::PutCredit {
        client_id,
        client_host,
        config,
        commits,
        want,
        release,
    } = req
    else {
        return None;
    };
    let client_host = fbb.create_string(client_host);
    let config = enc_config(fbb, config);
    let commits = enc_put_end_items(fbb, commits);
    let want: Vec<_> = want
        .iter()
        .map(|&(size, count)| {
            fb::CreditWant::create(
                fbb,
                &fb::CreditWantArgs {
                    size_bytes: size,
                    count,
                },
            )
        })
        .collect();
    let want = fbb.create_vector(&want);
    let release = fbb.create_vector(release);
    let args = fb::PutCreditArgs {
        client_id: *client_id,
        client_host: Some(client_host),
        config: Some(config),
        commits: Some(commits),
        want: Some(want),
        release: Some(release),
    };
    Some((
        fb::RequestBody::PutCredit,
        fb::PutCredit::create(fbb, &args).as_union_value(),
    ))
}

/// Decodes a `PutCredit`.
pub(super) fn dec_request(r: &fb::Request<'_>) -> Result<Request, SchemaError> {
    if r.body_type() != fb::RequestBody::PutCredit {
        return Err(unknown_request(r.body_type()));
    }
    let m = r
        .body_as_put_credit()
        .ok_or_else(|| missing("put_credit"))?;
    Ok(Request::PutCredit {
        client_id: m.client_id(),
        client_host: m.client_host().unwrap_or_default().to_string(),
        config: dec_config(m.config()),
        commits: dec_put_end_items(m.commits()),
        want: m
            .want()
            .map(|v| v.iter().map(|w| (w.size_bytes(), w.count())).collect())
            .unwrap_or_default(),
        release: m.release().map(|v| v.iter().collect()).unwrap_or_default(),
    })
}

/// Encodes a `CreditGrant` (`None` for any other answer).
pub(super) fn enc_response(
    fbb: &mut Fbb<'_>,
    body: &ResponseBody,
) -> Option<(fb::ResponseBody, WIPOffset<UnionWIPOffset>)> {
    let ResponseBody::CreditGrant { codes, credits } = body else {
        return None;
    };
    let codes = fbb.create_vector(codes);
    let credits: Vec<_> = credits
        .iter()
        .map(|c| {
            let replicas = enc_replicas(fbb, &c.replicas);
            let args = fb::CreditArgs {
                size_bytes: c.size,
                replicas: Some(replicas),
                ttl_ms: c.ttl_ms,
            };
            fb::Credit::create(fbb, &args)
        })
        .collect();
    let credits = fbb.create_vector(&credits);
    let args = fb::CreditGrantArgs {
        codes: Some(codes),
        credits: Some(credits),
    };
    Some((
        fb::ResponseBody::CreditGrant,
        fb::CreditGrant::create(fbb, &args).as_union_value(),
    ))
}

/// Decodes a `CreditGrant` (`None`: not one).
pub(super) fn dec_response(r: &fb::Response<'_>) -> Option<ResponseBody> {
    let g = r.body_as_credit_grant()?;
    Some(ResponseBody::CreditGrant {
        codes: g.codes().map(|v| v.iter().collect()).unwrap_or_default(),
        credits: g
            .credits()
            .map(|v| {
                v.iter()
                    .map(|c| Credit {
                        size: c.size_bytes(),
                        replicas: dec_replicas(c.replicas()),
                        ttl_ms: c.ttl_ms(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}
