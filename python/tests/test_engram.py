"""EngramStore against a real master and store node: tables written per head, rows read
back by id through both input forms, removal, and the refusals."""

import itertools

import numpy as np
import pytest

from mooncake_rs.store import (
    EngramStore,
    EngramStoreConfig,
    MooncakeDistributedStore,
    _get_pyclient_from_wrapper,
)

_layers = itertools.count(100)


def config(sizes=(17, 19, 23, 29), dim=8):
    cfg = EngramStoreConfig()
    cfg.table_vocab_sizes = list(sizes)
    cfg.embedding_dim = dim
    return cfg


def tables_for(es):
    dim = es.get_embedding_dim()
    return [
        np.arange(n * dim, dtype=np.float32).reshape(n, dim) + 1000 * h
        for h, n in enumerate(es.get_table_vocab_sizes())
    ]


@pytest.fixture
def layer(store):
    es = EngramStore(next(_layers), config(), store)
    yield es
    es.remove_from_store(force=True)


def test_config_defaults_and_metadata_only():
    cfg = EngramStoreConfig()
    assert cfg.table_vocab_sizes == [1024] and cfg.embedding_dim == 64
    es = EngramStore(layer_id=7, config=config())
    assert es.get_num_heads() == 4 and es.get_embedding_dim() == 8
    assert es.get_table_vocab_sizes() == [17, 19, 23, 29]
    assert es.get_store_keys() == [f"engram:l7:h{h}" for h in range(4)]
    with pytest.raises(RuntimeError):
        es.lookup([[[0, 0, 0, 0]]])
    with pytest.raises(RuntimeError):
        es.populate(tables_for(es))
    with pytest.raises(RuntimeError, match="rc=-600"):
        es.remove_from_store()


@pytest.mark.parametrize("sizes,dim", [((), 8), ((4, 0), 8), ((4, -2), 8), ((4,), 0), ((4,), -1)])
def test_bad_config(sizes, dim):
    with pytest.raises(ValueError):
        EngramStore(0, config(sizes, dim))


def test_populate_and_lookup_return_the_stored_rows(layer, store):
    tables = tables_for(layer)
    layer.populate(tables)
    for key, t in zip(layer.get_store_keys(), tables):
        assert store.get(key) == t.tobytes()
    ids = np.array([[[0, 1, 2, 3], [16, 18, 22, 28], [5, 5, 5, 5]]], dtype=np.int64)
    out = layer.lookup(ids)
    assert out.shape == (1, 3, 4, 8) and out.dtype == np.float32
    for pos, head in itertools.product(range(3), range(4)):
        assert np.array_equal(out[0, pos, head], tables[head][ids[0, pos, head]])
    from_list = layer.lookup(ids.tolist())
    assert np.array_equal(from_list, out)
    two = layer.lookup(np.array([[[1, 2, 3, 4]], [[4, 3, 2, 1]]], dtype=np.int32))
    assert two.shape == (2, 1, 4, 8)
    assert np.array_equal(two[1, 0, 0], tables[0][4])


def test_populate_is_create_only_and_remove_counts(layer, store):
    tables = tables_for(layer)
    layer.populate(tables)
    with pytest.raises(RuntimeError, match="populate failed"):
        layer.populate(tables)
    assert layer.remove_from_store(force=True) == 4
    for key in layer.get_store_keys():
        assert store.is_exist(key) == 0
    assert layer.remove_from_store(force=True) == 0
    layer.populate([t.astype(np.float64) for t in tables])  # converted to float32
    assert store.get(layer.get_store_keys()[1]) == tables[1].tobytes()


def test_populate_refusals(layer, store):
    tables = tables_for(layer)
    with pytest.raises(RuntimeError, match="num_heads"):
        layer.populate(tables[:3])
    with pytest.raises(RuntimeError, match="NumPy"):
        layer.populate([t.tolist() for t in tables])
    with pytest.raises(RuntimeError, match="2D"):
        layer.populate([t.reshape(-1) for t in tables])
    wrong = list(tables)
    wrong[2] = np.zeros((22, 8), dtype=np.float32)
    with pytest.raises(RuntimeError, match="shape"):
        layer.populate(wrong)
    with pytest.raises(TypeError):
        layer.populate(tuple(tables))
    for key in layer.get_store_keys():
        assert store.is_exist(key) == 0  # nothing was written


def test_lookup_refusals(layer):
    with pytest.raises(RuntimeError):
        layer.lookup([[[0, 1, 2, 3]]])  # tables not populated
    layer.populate(tables_for(layer))
    with pytest.raises(RuntimeError, match="empty"):
        layer.lookup([])
    with pytest.raises(RuntimeError, match="empty"):
        layer.lookup([[]])
    with pytest.raises(RuntimeError, match="num_heads"):
        layer.lookup(np.zeros((1, 2, 3), dtype=np.int64))
    with pytest.raises(RuntimeError, match="shape"):
        layer.lookup(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(RuntimeError):
        layer.lookup([[[0, 1, 2]]])  # three ids for four heads
    with pytest.raises(RuntimeError):
        layer.lookup([[[0, 1, 2, 3]], [[0, 1, 2, 3], [0, 1, 2, 3]]])  # ragged
    with pytest.raises(RuntimeError, match="outside"):
        layer.lookup([[[17, 1, 2, 3]]])
    with pytest.raises(RuntimeError, match="outside"):
        layer.lookup(np.array([[[0, 1, 2, -1]]]))
    with pytest.raises(RuntimeError):
        layer.lookup(np.zeros((0, 1, 4), dtype=np.int64))


def test_store_forms(store):
    # A store wrapper that hands over its store through a capsule works like the store.
    class Wrapper:
        def _get_pyclient_capsule(self):
            return store._get_pyclient_capsule()

    es = EngramStore(next(_layers), config((3,), 2), Wrapper())
    table = np.arange(6, dtype=np.float32).reshape(3, 2)
    es.populate([table])
    assert np.array_equal(es.lookup([[[2]]])[0, 0, 0], table[2])
    assert es.remove_from_store(force=True) == 1
    # A store that is not set up behaves as Mooncake's: its calls fail.
    idle = EngramStore(0, config(), MooncakeDistributedStore())
    with pytest.raises(RuntimeError, match="remove_from_store failed"):
        idle.remove_from_store()
    with pytest.raises(RuntimeError):
        EngramStore(0, config(), object())
    # Mooncake's EngramStore does not take the raw capsule either.
    with pytest.raises(RuntimeError):
        EngramStore(0, config(), _get_pyclient_from_wrapper(store))
