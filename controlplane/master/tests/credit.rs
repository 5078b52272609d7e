//! Put credit at the master on a hand-driven clock: grants, commits into credit, refusals,
//! release, TTL expiry, the per-client limit and segments that go away.

mod common;

use std::sync::Arc;

use mc_master::clock::ManualClock;
use mc_master::objects::Policy;
use mc_master::service::{MasterService, ServiceConfig};

use mc_schema::ErrorCode;
use mc_schema::msg::{Credit, PutEndItem, ReplicateConfig, Request, Response, ResponseBody};

const SEG: u64 = 8 << 20;
const OBJ: u64 = 64 << 10;
const ME: u64 = 7;

fn master(policy: Policy) -> (Arc<MasterService>, Arc<ManualClock>) {
    let cfg = ServiceConfig {
        policy,
        ..ServiceConfig::default()
    };
    common::master_with_one_segment(cfg, SEG)
}

fn policy() -> Policy {
    Policy {
        credit_ttl_ms: 60_000,
        credit_max_client_bytes: 1 << 20,
        ..Policy::default()
    }
}

fn call(
    svc: &MasterService,
    client_id: u64,
    commits: Vec<PutEndItem>,
    want: Vec<(u64, u32)>,
    release: Vec<u64>,
) -> Response {
    svc.handle_now(
        0,
        Request::PutCredit {
            client_id,
            client_host: "h".into(),
            config: ReplicateConfig::default(),
            commits,
            want,
            release,
        },
    )
}

fn grant(svc: &MasterService, client_id: u64, n: u32) -> Vec<Credit> {
    let r = call(svc, client_id, vec![], vec![(OBJ, n)], vec![]);
    let ResponseBody::CreditGrant { codes, credits } = r.body else {
        panic!("{r:?}")
    };
    assert!(codes.is_empty());
    credits
}

fn commit(svc: &MasterService, client_id: u64, key: &str, c: &Credit, failed: Vec<u32>) -> i32 {
    let item = PutEndItem {
        key: key.into(),
        slice_crcs: vec![0x1234],
        failed_replicas: failed,
        generation: c.id(),
    };
    let r = call(svc, client_id, vec![item], vec![], vec![]);
    let ResponseBody::CreditGrant { codes, .. } = r.body else {
        panic!("{r:?}")
    };
    codes[0]
}

use common::{read_status as status, used};

#[test]
fn a_put_committed_into_credit_is_readable_and_the_credit_is_used_up() {
    let (svc, _) = master(policy());
    let credits = grant(&svc, ME, 2);
    assert_eq!(credits.len(), 2);
    let c = &credits[0];
    assert_eq!(c.size, OBJ);
    assert_eq!(c.ttl_ms, 60_000);
    let slice = &c.replicas[0].slices[0];
    assert!(slice.token.is_some(), "credit carries write tokens");
    assert_eq!(used(&svc), 2 * OBJ);
    assert_eq!(svc.objects.credit_bytes(), 2 * OBJ);
    assert_eq!(status(&svc, "k"), ErrorCode::ObjectNotFound.code());
    assert_eq!(commit(&svc, ME, "k", c, vec![]), 0);
    assert_eq!(status(&svc, "k"), 0);
    assert_eq!(svc.objects.credit_bytes(), OBJ);
    assert_eq!(used(&svc), 2 * OBJ, "the object keeps the credit's space");
    // A credit commits once.
    assert_eq!(
        commit(&svc, ME, "k2", c, vec![]),
        ErrorCode::PutCreditNotFound.code()
    );
}

#[test]
fn commit_and_refill_in_one_call() {
    let (svc, _) = master(policy());
    let c = grant(&svc, ME, 1).remove(0);
    let item = PutEndItem {
        key: "k".into(),
        slice_crcs: vec![1],
        failed_replicas: vec![],
        generation: c.id(),
    };
    let r = call(&svc, ME, vec![item], vec![(OBJ, 3)], vec![]);
    let ResponseBody::CreditGrant { codes, credits } = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(codes, vec![0]);
    assert_eq!(credits.len(), 3);
    assert_eq!(status(&svc, "k"), 0);
}

#[test]
fn another_clients_credit_and_unknown_ids_are_refused() {
    let (svc, _) = master(policy());
    let c = grant(&svc, ME, 1).remove(0);
    assert_eq!(
        commit(&svc, ME + 1, "k", &c, vec![]),
        ErrorCode::PutCreditNotFound.code()
    );
    assert_eq!(status(&svc, "k"), ErrorCode::ObjectNotFound.code());
    // Still held for its owner.
    assert_eq!(commit(&svc, ME, "k", &c, vec![]), 0);
}

#[test]
fn an_existing_key_refuses_the_commit_and_frees_the_credit() {
    let (svc, _) = master(policy());
    let cs = grant(&svc, ME, 2);
    assert_eq!(commit(&svc, ME, "k", &cs[0], vec![]), 0);
    let before = used(&svc);
    assert_eq!(
        commit(&svc, ME, "k", &cs[1], vec![]),
        ErrorCode::ObjectAlreadyExists.code()
    );
    assert_eq!(used(&svc), before - OBJ);
    assert_eq!(svc.objects.credit_bytes(), 0);
}

#[test]
fn a_commit_with_every_replica_failed_frees_the_space() {
    let (svc, _) = master(policy());
    let c = grant(&svc, ME, 1).remove(0);
    assert_eq!(
        commit(&svc, ME, "k", &c, vec![0]),
        ErrorCode::TransferFail.code()
    );
    assert_eq!(status(&svc, "k"), ErrorCode::ObjectNotFound.code());
    assert_eq!(used(&svc), 0);
}

#[test]
fn a_commit_with_the_wrong_slice_count_frees_the_space() {
    let (svc, _) = master(policy());
    let c = grant(&svc, ME, 1).remove(0);
    let item = PutEndItem {
        key: "k".into(),
        slice_crcs: vec![1, 2],
        failed_replicas: vec![],
        generation: c.id(),
    };
    let r = call(&svc, ME, vec![item], vec![], vec![]);
    let ResponseBody::CreditGrant { codes, .. } = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(codes, vec![ErrorCode::InvalidParams.code()]);
    assert_eq!(used(&svc), 0);
}

#[test]
fn release_and_ttl_free_unused_credit() {
    let (svc, clock) = master(policy());
    let cs = grant(&svc, ME, 3);
    let r = call(&svc, ME, vec![], vec![], vec![cs[0].id()]);
    assert_eq!(r.status, 0);
    assert_eq!(used(&svc), 2 * OBJ);
    clock.advance_ms(59_999);
    svc.maintain();
    assert_eq!(used(&svc), 2 * OBJ, "not before the TTL");
    clock.advance_ms(1);
    svc.maintain();
    assert_eq!(used(&svc), 0);
    assert_eq!(
        commit(&svc, ME, "k", &cs[1], vec![]),
        ErrorCode::PutCreditNotFound.code()
    );
}

#[test]
fn each_client_holds_at_most_its_limit() {
    let (svc, _) = master(policy());
    // 1 MiB limit, 64 KiB each.
    assert_eq!(grant(&svc, ME, 100).len(), 16);
    assert_eq!(grant(&svc, ME, 1).len(), 0);
    assert_eq!(grant(&svc, ME + 1, 2).len(), 2, "the limit is per client");
}

#[test]
fn no_credit_with_a_zero_ttl_and_no_credit_beyond_the_space() {
    let (svc, _) = master(Policy {
        credit_ttl_ms: 0,
        ..policy()
    });
    assert!(grant(&svc, ME, 4).is_empty());
    let (svc, _) = master(Policy {
        credit_max_client_bytes: 1 << 40,
        ..policy()
    });
    assert_eq!(grant(&svc, ME, 1000).len(), (SEG / OBJ) as usize);
}

#[test]
fn credit_in_a_segment_that_goes_away_is_forgotten() {
    let (svc, _) = master(policy());
    let c = grant(&svc, ME, 1).remove(0);
    let r = svc.handle_now(
        0,
        Request::UnmountSegment {
            client_id: ME,
            segment_id: 1,
        },
    );
    assert_eq!(r.status, 0);
    assert_eq!(svc.objects.credit_bytes(), 0);
    assert_eq!(
        commit(&svc, ME, "k", &c, vec![]),
        ErrorCode::PutCreditNotFound.code()
    );
}

#[test]
fn bad_requests_are_refused_whole() {
    let (svc, _) = master(policy());
    for want in [vec![(0, 1)], vec![(u64::MAX, 1)], vec![(OBJ, 20_000)]] {
        let r = call(&svc, ME, vec![], want, vec![]);
        assert_eq!(r.status, ErrorCode::InvalidParams.code(), "{r:?}");
    }
    assert_eq!(used(&svc), 0);
}
