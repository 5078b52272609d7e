"""setup(): argument forms, and bad arguments that return an error code and leave the
object usable for a correct setup."""


from conftest import new_store
from mooncake_rs.store import ErrorCode, MooncakeDistributedStore

INVALID = int(ErrorCode.INVALID_PARAMS)


def good(master):
    return dict(
        local_hostname="127.0.0.1",
        metadata_server="P2PHANDSHAKE",
        global_segment_size=0,
        local_buffer_size=16 << 20,
        protocol="tcp",
        rdma_devices="",
        master_server_addr=master,
    )


def bad_variants(master):
    base = good(master)
    yield dict(base, metadata_server="etcd://somewhere:2379"), INVALID, "metadata_server"
    yield dict(base, metadata_server="http://"), INVALID, "metadata_server"
    yield dict(base, protocol="rdma"), INVALID, "rdma"
    yield dict(base, protocol="carrier-pigeon"), INVALID, "protocol"
    yield dict(base, master_server_addr="no-port"), INVALID, "master_server_addr"
    yield dict(base, global_segment_size="lots"), INVALID, "global_segment_size"
    yield dict(base, global_segment_size=-5), INVALID, "global_segment_size"
    yield dict(base, global_segment_size=1024), INVALID, "smallest segment"
    yield dict(base, local_buffer_size=True), INVALID, "local_buffer_size"
    yield dict(base, local_hostname=""), INVALID, "local_hostname"
    yield dict(base, enable_ssd_offload=True), INVALID, "ssd"
    yield dict(base, master_server_addr="127.0.0.1:1"), int(ErrorCode.RPC_FAIL), "127.0.0.1:1"
    # HA locators are accepted; an unknown scheme is not, and no leader is a clear error.
    yield dict(base, master_server_addr="k8s://lease"), INVALID, "master_server_addr"
    yield (
        dict(base, master_server_addr="etcd://127.0.0.1:1"),
        int(ErrorCode.UNAVAILABLE_IN_CURRENT_STATUS),
        "etcd://127.0.0.1:1",
    )


def test_bad_arguments_then_good_setup(cluster):
    s = MooncakeDistributedStore()
    for kwargs, code, needle in bad_variants(cluster.master_addr):
        assert s.setup(**kwargs) == code, kwargs
        assert needle in s.last_error(), (needle, s.last_error())
        assert s.health_check() == 1
    assert s.setup(**good(cluster.master_addr)) == 0
    assert s.health_check() == 0
    assert s.put("after-bad-setups", b"ok") == 0
    assert s.get("after-bad-setups") == b"ok"
    # a second setup on a live object is refused and changes nothing
    assert s.setup(**good(cluster.master_addr)) == INVALID
    assert s.get("after-bad-setups") == b"ok"
    s.remove_all(force=True)
    s.close()


def test_positional_form(cluster):
    s = MooncakeDistributedStore()
    g = good(cluster.master_addr)
    assert s.setup(*g.values()) == 0
    assert s.health_check() == 0
    s.close()


def test_older_keyword_names(cluster):
    s = MooncakeDistributedStore()
    g = good(cluster.master_addr)
    g["device_name"] = g.pop("rdma_devices")
    g["master_server_address"] = g.pop("master_server_addr")
    assert s.setup(**g) == 0
    s.close()
    # Both names with one value: accepted (LMCache sends both).
    g["master_server_addr"] = cluster.master_addr
    assert s.setup(**g) == 0
    s.close()
    # Both names, different values: which master is meant is unclear.
    g["master_server_address"] = "127.0.0.1:1"
    assert s.setup(**g) == INVALID
    assert "master_server_address" in s.last_error() and "127.0.0.1:1" in s.last_error()


def test_config_dict_with_size_strings(cluster):
    s = MooncakeDistributedStore()
    cfg = {
        "local_hostname": "127.0.0.1",
        "metadata_server": "http://127.0.0.1:8080/metadata",
        "global_segment_size": "0",
        "local_buffer_size": "64MB",
        "protocol": "tcp",
        "master_server_addr": cluster.master_addr,
    }
    assert s.setup(cfg) == 0
    assert s.put("dict-setup", b"v") == 0
    assert s.get("dict-setup") == b"v"
    s.remove_all(force=True)
    s.close()
    assert s.setup(dict(cfg, local_buffer_size="64XB")) == INVALID
    assert s.setup(cfg, "extra") == INVALID


def test_missing_required_arguments(cluster):
    s = MooncakeDistributedStore()
    assert s.setup() == INVALID
    assert "local_hostname" in s.last_error()
    assert s.setup(local_hostname="127.0.0.1", master_server_addr=cluster.master_addr) == INVALID
    assert "metadata_server" in s.last_error()


def test_health_check_reports_unreachable_master(tmp_path):
    from conftest import Cluster

    c = Cluster(tmp_path)
    c.start_master()
    s = new_store(c.master_addr)
    assert s.health_check() == 0
    c.stop()
    assert s.health_check() == 2
    s.close()
    assert s.health_check() == 1
