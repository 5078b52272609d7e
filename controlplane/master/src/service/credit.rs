//! The `PutCredit` handler (`docs/why-fast-path.md`): gives credit back, commits puts
//! written into credit, and grants more, in that order, in one round trip.

use mc_schema::ErrorCode;
use mc_schema::limits::{MAX_BATCH_KEYS, MAX_OBJECT_BYTES, MAX_REPLICAS, key_is_valid};
use mc_schema::msg::{Credit, Request, Response, ResponseBody};

use super::{MasterService, check_batch, invalid};

impl MasterService {
    /// Answers a `PutCredit` (any other request is a bug of the caller).
    pub(super) fn put_credit(&self, req: Request, now: u64) -> Response {
        let Request::PutCredit {
            client_id,
            client_host,
            config,
            commits,
            want,
            release,
        } = req
        else {
            return invalid("not a PutCredit");
        };
        if let Err(r) = check_credit_request(&commits, &want, &release, config.replica_num) {
            return r;
        }
        for id in release {
            self.objects.release_credit(client_id, id);
        }
        let codes = commits
            .into_iter()
            .map(|item| {
                if !key_is_valid(&item.key) {
                    self.objects.release_credit(client_id, item.generation);
                    return ErrorCode::InvalidParams.code();
                }
                self.objects.put_with_credit(client_id, item, now).code()
            })
            .collect();
        let ttl_ms = self.cfg.policy.credit_ttl_ms;
        let mut credits = Vec::new();
        'sizes: for (size, count) in want {
            for _ in 0..count {
                let granted =
                    self.objects
                        .grant_credit(size, &config, (client_id, &client_host), now);
                let Ok(mut replicas) = granted else {
                    // No room, or the client's limit: fewer than asked; it puts the long way.
                    break 'sizes;
                };
                self.sign(&mut replicas);
                credits.push(Credit {
                    size,
                    replicas,
                    ttl_ms,
                });
            }
        }
        Response::ok(ResponseBody::CreditGrant { codes, credits })
    }
}

/// Bounds of one `PutCredit`: batches as for PutEnd, credit asked for valid sizes, at
/// most a batch's worth in all.
fn check_credit_request(
    commits: &[mc_schema::msg::PutEndItem],
    want: &[(u64, u32)],
    release: &[u64],
    replica_num: u32,
) -> Result<(), Response> {
    check_batch(commits.len())?;
    check_batch(release.len())?;
    let asked: u64 = want.iter().map(|w| w.1 as u64).sum();
    if asked > MAX_BATCH_KEYS as u64 {
        return Err(invalid(format!(
            "credit for {asked} puts asked at once; the limit is {MAX_BATCH_KEYS}"
        )));
    }
    if let Some((size, _)) = want.iter().find(|w| w.0 == 0 || w.0 > MAX_OBJECT_BYTES) {
        return Err(invalid(format!(
            "credit asked for values of {size} bytes; values are 1..={MAX_OBJECT_BYTES}"
        )));
    }
    if !want.is_empty() && (replica_num == 0 || replica_num > MAX_REPLICAS) {
        return Err(invalid(format!(
            "replica_num {replica_num} is outside 1..={MAX_REPLICAS}"
        )));
    }
    Ok(())
}
