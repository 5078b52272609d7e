"""MooncakeDistributedNoFRegister: Mooncake's signatures, and the failure code both calls
return in a build without NVMe-oF."""

import inspect

from mooncake_rs.store import MooncakeDistributedNoFRegister


def test_calls_fail_with_operation_failed(bare_master):
    r = MooncakeDistributedNoFRegister()
    assert r.real_register() == -1
    assert (
        r.real_register("nqn.2026-01.io.test", 2, "127.0.0.1", 4421, 4096, 1 << 20,
                        bare_master.master_addr)
        == -1
    )
    assert r.real_unregister_by_endpoint(nqn="nqn.x", master_server_addr=bare_master.master_addr) == -1
    # Nothing was mounted at the master.
    assert bare_master.segments() == []


def test_signatures_match_mooncake():
    reg = inspect.signature(MooncakeDistributedNoFRegister.real_register).parameters
    assert [(n, p.default) for n, p in list(reg.items())[1:]] == [
        ("nqn", ""), ("nsid", 1), ("traddr", ""), ("trsvcid", 4420), ("base", 0),
        ("size", 1024), ("master_server_addr", "127.0.0.1:50051"),
    ]
    unreg = inspect.signature(MooncakeDistributedNoFRegister.real_unregister_by_endpoint)
    assert list(unreg.parameters)[1:] == [
        "nqn", "nsid", "traddr", "trsvcid", "master_server_addr",
    ]
