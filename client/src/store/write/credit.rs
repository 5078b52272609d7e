//! Puts through put credit (`docs/why-fast-path.md`): items start from credit the client
//! holds (no round trip), or from credit asked for now, or by PutStart when there is
//! none; items written into credit commit with one `PutCredit` that also asks for the
//! credit the next batch will use. An item whose credit the master no longer knows (a new
//! leader, a TTL run out) or none of whose replicas could be written into credit is
//! written again the long way.

use mc_schema::msg::{Credit, PutEndItem, PutStartResult, ReplicateConfig, Request, ResponseBody};

use super::{Batch, Store};
use crate::{Error, ErrorCode, Result};

impl Store {
    /// Phase 2 with credit: one started put per item of `b.todo`, recording in `b` which
    /// credit each is written into.
    pub(super) fn start_with_credit(
        &self,
        b: &mut Batch<'_>,
        config: &ReplicateConfig,
    ) -> Result<Vec<PutStartResult>> {
        let sizes: Vec<u64> = b.todo.iter().map(|&i| b.items[i].1.len() as u64).collect();
        let mut got = self.credit.take_for(config, &sizes);
        let missing: Vec<u64> = missing_sizes(&got, &sizes);
        if !missing.is_empty() {
            self.ask_credit(config, &missing);
            let again = self.credit.take_for(config, &missing);
            let mut again = again.into_iter();
            for g in got.iter_mut().filter(|g| g.is_none()) {
                *g = again.next().flatten();
            }
        }
        let long_way: Vec<usize> = (0..got.len()).filter(|&t| got[t].is_none()).collect();
        let mut started_long = if long_way.is_empty() {
            Vec::new()
        } else {
            let items = long_way
                .iter()
                .map(|&t| (b.items[b.todo[t]].0.to_string(), sizes[t]))
                .collect();
            match self.start_writes(items, config, false) {
                Ok(s) => s,
                Err(e) => {
                    // Unused credit stays usable.
                    let back: Vec<Credit> = got.into_iter().flatten().collect();
                    self.credit.add(config, back, 0);
                    return Err(e);
                }
            }
        }
        .into_iter();
        b.credit = got
            .iter()
            .map(|g| g.as_ref().map_or(0, Credit::id))
            .collect();
        b.credit_config = Some(config.clone());
        Ok(got
            .into_iter()
            .map(|g| match g {
                Some(c) => PutStartResult {
                    status: 0,
                    replicas: c.replicas,
                },
                None => started_long.next().expect("one PutStart answer per item"),
            })
            .collect())
    }

    /// Asks the master for one credit per entry of `sizes` (and hands back stale ones);
    /// what it grants goes to the pool. Best effort: without it, puts take the long way.
    fn ask_credit(&self, config: &ReplicateConfig, sizes: &[u64]) {
        let want = self.credit.wants(config, sizes);
        if want.is_empty() {
            return;
        }
        let asked = want.iter().map(|w| w.1).sum();
        let req = self.credit_request(config, Vec::new(), want, Vec::new());
        if let Ok(ResponseBody::CreditGrant { credits, .. }) = self.call(&req).map(|r| r.body) {
            self.credit.add(config, credits, asked);
        }
    }

    fn credit_request(
        &self,
        config: &ReplicateConfig,
        commits: Vec<PutEndItem>,
        want: Vec<(u64, u32)>,
        mut release: Vec<u64>,
    ) -> Request {
        release.extend(self.credit.take_stale());
        Request::PutCredit {
            client_id: self.client_id,
            client_host: self.cfg.local_hostname.clone(),
            config: config.clone(),
            commits,
            want,
            release,
        }
    }

    /// Phase 4 for items written into credit: one `PutCredit` commits `ends`, hands back
    /// the credit of `lost` (items none of whose replicas was written) and asks for as much
    /// credit as this batch used. Returns the items to write again the long way.
    pub(super) fn commit_credit(
        &self,
        b: &mut Batch<'_>,
        ends: Vec<(usize, PutEndItem)>,
        lost: Vec<usize>,
    ) -> Vec<usize> {
        let config = b.credit_config.clone().expect("a batch that used credit");
        let used: Vec<u64> = ends
            .iter()
            .map(|(i, _)| *i)
            .chain(lost.iter().copied())
            .map(|i| b.items[i].1.len() as u64)
            .collect();
        let want = self.credit.wants(&config, &used);
        let asked = want.iter().map(|w| w.1).sum();
        let release = lost.iter().map(|&i| b.credit_id(i)).collect();
        let (idx, commits): (Vec<usize>, Vec<PutEndItem>) = ends.into_iter().unzip();
        let req = self.credit_request(&config, commits, want, release);
        let mut retry = lost;
        match self.call(&req).map(|r| r.body) {
            Ok(ResponseBody::CreditGrant { codes, credits }) if codes.len() == idx.len() => {
                self.credit.add(&config, credits, asked);
                for (i, c) in idx.into_iter().zip(codes) {
                    if c == ErrorCode::PutCreditNotFound.code() {
                        // The master does not know this client's credit (a new leader):
                        // none of it is any good.
                        self.credit.clear();
                        retry.push(i);
                        continue;
                    }
                    b.results[i] = Some(if c == 0 {
                        self.credit.note_commit();
                        Ok(())
                    } else {
                        Err(Error::from_status(c, &format!("put {}", b.items[i].0)))
                    });
                }
            }
            other => {
                let e = match other {
                    Err(e) => e,
                    Ok(_) => super::unexpected("PutCredit"),
                };
                idx.into_iter()
                    .for_each(|i| b.results[i] = Some(Err(e.clone())));
                return Vec::new();
            }
        }
        retry
    }

    /// Writes items `retry` of `b` again by PutStart, write, PutEnd.
    pub(super) fn retry_long_way(&self, b: &mut Batch<'_>, retry: &[usize]) {
        let config = b.credit_config.clone().expect("a batch that used credit");
        let items: Vec<(&str, &[u8])> = retry.iter().map(|&i| b.items[i]).collect();
        let again = Batch::validate(&items);
        let started = self.start_writes(again.start_items(), &config, false);
        let results = match started {
            Ok(started) => {
                let pins = vec![super::pin_bits(&config); again.todo.len()];
                self.finish_writes(again, &started, &pins, false)
            }
            Err(e) => again.finish_with(Err(e)),
        };
        for (&i, r) in retry.iter().zip(results) {
            b.results[i] = Some(r);
        }
    }
}

/// The sizes of the entries of `got` without credit.
fn missing_sizes(got: &[Option<Credit>], sizes: &[u64]) -> Vec<u64> {
    got.iter()
        .zip(sizes)
        .filter(|(g, _)| g.is_none())
        .map(|(_, &s)| s)
        .collect()
}
