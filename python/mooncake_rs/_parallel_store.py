"""The ``*_with_parallelism`` tensor methods of ``MooncakeDistributedStore``, with Mooncake's
names, arguments, routes, keys and manifests (``_parallelism.py``), built on the tensor
put/get paths of ``_tensor_store.py``.

Writes, by what the call gives:

- neither ``parallelism`` nor ``writer_partition``: the whole tensor under ``key``;
- ``writer_partition`` (``rank``, ``size``, ``split_dim``): the tensor is the whole one;
  its rank's slice goes under the writer key, and a writer manifest records the whole;
- a ``TensorParallelism`` with only a TP axis: the tensor is this rank's shard (the global
  shape is its shape with ``split_dim`` times ``size``), stored under ``<key>_tp_<rank>``,
  plus the parallelism manifest;
- TP and other axes: the tensor is the whole one; its TP rank's slice is stored under the
  axes' key, plus the manifest;
- axes without TP: the tensor is stored as it is, with SHARD metadata, under the axes' key.

Reads follow a ``ReadTarget``: ``as_stored`` (the object under ``key``), ``shard`` (the
shard stored for those axes; a TP shard of another shard count is cut from the gathered
tensor), ``full`` (every TP shard the manifest lists, joined along the split dim; without
axes, the writer shards, or ``key`` itself when there is no writer manifest).

Puts return ``0`` or a negative code (lists for batches: per key the first failure); gets
return a tensor or ``None``. Invalid requests give ``INVALID_PARAMS`` / ``None``, as
Mooncake, with the reason logged at warning level.
"""

import ctypes
import logging

from . import _parallelism as pz
from . import _tensor_header as th
from . import _tensors as tz

INVALID = tz.INVALID_PARAMS
log = logging.getLogger("mooncake_rs.store")


class _Write:
    """One request's objects: [(key, TensorInfo, metadata)] and an optional manifest."""

    def __init__(self, entries, manifest=None):
        self.entries, self.manifest = entries, manifest


def _refuse(ctx, why):
    log.warning("%s: %s", ctx, why)
    return None


def _plan_write(ctx, key, tensor, parallelism, writer):
    try:
        full = tz.tensor_info(tensor)
    except (ValueError, ImportError) as e:
        return _refuse(ctx, e)
    if writer is not None:
        if parallelism is not None:
            return _refuse(ctx, "writer_partition cannot be combined with parallelism")
        w = pz.parse_writer(writer)
        if w is None:
            return _refuse(ctx, "invalid writer partition")
        rank, size, sd = w
        shape = full.shape
        if sd >= len(shape) or shape[sd] % size:
            return _refuse(ctx, f"dimension {sd} of {shape} does not split into {size}")
        start, length = th.shard_range(shape[sd], rank, size)
        info = tz.tensor_info(tz.narrow(tensor, sd, start, length))
        meta = th.tp_shard(full.dtype, shape, info.shape, rank, size, sd, info.nbytes)
        manifest = (pz.writer_manifest_key(key), pz.encode_manifest(full.dtype, shape, sd, size))
        return _Write([(pz.writer_key(key, rank, size, sd), info, meta)], manifest)
    if parallelism is None:
        return _Write([(key, full, full.full_metadata())])
    axes = pz.parse(parallelism)
    if axes is None:
        return _refuse(ctx, f"invalid parallelism {parallelism!r}")
    i = pz.tp_index(axes)
    if i is None:
        meta = pz.shard_metadata(full.dtype, full.shape, full.shape, axes, full.nbytes)
        return _Write([(pz.shard_key(key, axes), full, meta)])
    tp = axes[i]
    sd, ndim = tp.split_dim, len(full.shape)
    if not 0 <= sd < ndim:
        return _refuse(ctx, f"split_dim {sd} outside a {ndim}-d tensor")
    if len(axes) == 1:
        # The caller holds its rank's shard: the whole is `size` of them along split_dim.
        info, local = full, full.shape
        global_shape = tuple(d * tp.size if j == sd else d for j, d in enumerate(local))
    else:
        global_shape = full.shape
        if global_shape[sd] % tp.size:
            return _refuse(ctx, f"dimension {sd} of {global_shape} does not split into {tp.size}")
        start, length = th.shard_range(global_shape[sd], tp.rank, tp.size)
        info = tz.tensor_info(tz.narrow(tensor, sd, start, length))
    meta = pz.shard_metadata(full.dtype, global_shape, info.shape, axes, info.nbytes)
    manifest = (
        pz.parallelism_manifest_key(key),
        pz.encode_manifest(full.dtype, global_shape, sd, tp.size),
    )
    return _Write([(pz.shard_key(key, axes), info, meta)], manifest)


def _requests(ctx, n, items, name):
    """Per key request objects of a batch: ``None`` for all, or the list (``None`` when
    it does not line up)."""
    if items is None:
        return [None] * n
    if not isinstance(items, list) or len(items) != n:
        log.warning("%s: %s must be a list as long as keys, or None", ctx, name)
        return None
    return items


class ParallelismMethods:
    """Mixed into ``MooncakeDistributedStore`` next to ``TensorMethods``."""

    # ----- writes -----

    def _write_plans(self, plans, config, upsert):
        """Writes every plan's objects in one batch, then their manifests in another (each
        distinct manifest key once); per plan 0 or the first failure."""
        codes = [INVALID if p is None else 0 for p in plans]
        keys, infos, metas, owner = [], [], [], []
        for b, p in enumerate(plans):
            for k, info, meta in p.entries if p is not None else []:
                keys.append(k)
                infos.append(info)
                metas.append(meta)
                owner.append(b)
        res = self._write_infos(keys, infos, config, upsert, metas) if keys else []
        for b, rc in zip(owner, res):
            if codes[b] == 0 and rc != 0:
                codes[b] = rc
        manifests = {}
        for b, p in enumerate(plans):
            if p is not None and p.manifest is not None and codes[b] == 0:
                manifests.setdefault(p.manifest[0], (p.manifest[1], []))[1].append(b)
        if manifests:
            mkeys = list(manifests)
            bufs = [manifests[k][0] for k in mkeys]
            put = self.batch_upsert_from if upsert else self.batch_put_from
            args = [mkeys, bufs, [len(b) for b in bufs]]
            res = put(*args, config) if config is not None else put(*args)
            for k, rc in zip(mkeys, res):
                for b in manifests[k][1]:
                    if codes[b] == 0 and rc != 0:
                        codes[b] = rc
        return codes

    def _put_parallel(self, ctx, keys, tensors, parallelisms, config, writers, upsert):
        n = len(keys)
        if len(tensors) != n:
            log.warning("%s: keys and tensors must have the same length", ctx)
            return [INVALID] * n
        ps = _requests(ctx, n, parallelisms, "parallelisms")
        ws = _requests(ctx, n, writers, "writer_partitions")
        if ps is None or ws is None:
            return [INVALID] * n
        plans = [_plan_write(ctx, k, t, p, w) for k, t, p, w in zip(keys, tensors, ps, ws)]
        return self._write_plans(plans, config, upsert)

    def _tensors_of_buffers(self, ctx, buffer_ptrs, sizes):
        out = []
        for p, n in zip(buffer_ptrs, sizes):
            ok = (not isinstance(p, int) or p != 0) and n >= th.METADATA_SIZE
            t = tz.from_object_bytes(_peek(p, n, n), n) if ok else None
            if t is None:
                log.warning("%s: buffer does not hold a tensor object", ctx)
            out.append(t)
        return out

    def _put_parallel_from(self, ctx, keys, ptrs, sizes, parallelisms, config, writers, upsert):
        n = len(keys)
        if len(ptrs) != n or len(sizes) != n:
            log.warning("%s: keys, buffer_ptrs and sizes must have the same length", ctx)
            return [INVALID] * n
        tensors = self._tensors_of_buffers(ctx, ptrs, sizes)
        codes = self._put_parallel(ctx, keys, tensors, parallelisms, config, writers, upsert)
        return [INVALID if t is None else rc for t, rc in zip(tensors, codes)]

    def put_tensor_with_parallelism(
        self, key, tensor, parallelism=None, config=None, writer_partition=None
    ):
        """Stores a tensor, a TP shard of it, or a writer partition's slice (see the
        module's text). 0 or a negative code."""
        return self._put_parallel(
            "put_tensor_with_parallelism", [key], [tensor], [parallelism], config,
            [writer_partition], False,
        )[0]

    def batch_put_tensor_with_parallelism(
        self, keys, tensors_list, parallelisms=None, config=None, writer_partitions=None
    ):
        """``put_tensor_with_parallelism`` per key, in one batch; one code per key."""
        return self._put_parallel(
            "batch_put_tensor_with_parallelism", list(keys), list(tensors_list), parallelisms,
            config, writer_partitions, False,
        )

    def upsert_tensor_with_parallelism(
        self, key, tensor, parallelism=None, config=None, writer_partition=None
    ):
        """``put_tensor_with_parallelism`` that replaces existing values and manifests."""
        return self._put_parallel(
            "upsert_tensor_with_parallelism", [key], [tensor], [parallelism], config,
            [writer_partition], True,
        )[0]

    def batch_upsert_tensor_with_parallelism(
        self, keys, tensors_list, parallelisms=None, config=None, writer_partitions=None
    ):
        """``batch_put_tensor_with_parallelism`` that replaces existing values."""
        return self._put_parallel(
            "batch_upsert_tensor_with_parallelism", list(keys), list(tensors_list),
            parallelisms, config, writer_partitions, True,
        )

    def put_tensor_with_parallelism_from(
        self, key, buffer_ptr, size, parallelism=None, config=None, writer_partition=None
    ):
        """``put_tensor_with_parallelism`` of the tensor object ([header][bytes]) in a
        buffer."""
        return self._put_parallel_from(
            "put_tensor_with_parallelism_from", [key], [buffer_ptr], [size],
            [parallelism], config, [writer_partition], False,
        )[0]

    def batch_put_tensor_with_parallelism_from(
        self, keys, buffer_ptrs, sizes, parallelisms=None, config=None, writer_partitions=None
    ):
        """``put_tensor_with_parallelism_from`` per key, in one batch."""
        return self._put_parallel_from(
            "batch_put_tensor_with_parallelism_from", list(keys), list(buffer_ptrs),
            list(sizes), parallelisms, config, writer_partitions, False,
        )

    def upsert_tensor_with_parallelism_from(
        self, key, buffer_ptr, size, parallelism=None, config=None, writer_partition=None
    ):
        """``put_tensor_with_parallelism_from`` that replaces existing values."""
        return self._put_parallel_from(
            "upsert_tensor_with_parallelism_from", [key], [buffer_ptr], [size],
            [parallelism], config, [writer_partition], True,
        )[0]

    def batch_upsert_tensor_with_parallelism_from(
        self, keys, buffer_ptrs, sizes, parallelisms=None, config=None, writer_partitions=None
    ):
        """``batch_put_tensor_with_parallelism_from`` that replaces existing values."""
        return self._put_parallel_from(
            "batch_upsert_tensor_with_parallelism_from", list(keys), list(buffer_ptrs),
            list(sizes), parallelisms, config, writer_partitions, True,
        )

    # ----- reads -----

    def _objects(self, keys):
        """Per key (metadata, object bytes) of the tensor object stored there, or ``None``."""
        out = []
        for h in self.batch_get_buffer(list(keys)):
            if h is None:
                out.append(None)
                continue
            raw = memoryview(h).cast("B")
            meta = th.decode(raw, h.size())
            out.append(None if meta is None else (meta, raw))
        return out

    def _gather(self, ctx, key, axes):
        """(metadata, object) of the whole tensor joined from its TP shards, or ``None``.
        ``axes`` ``None``: the writer shards of ``key``."""
        mkey = pz.writer_manifest_key(key) if axes is None else pz.parallelism_manifest_key(key)
        raw = self.get(mkey)  # b'' when missing
        manifest = pz.decode_manifest(raw) if raw else None
        if axes is None:
            if manifest is None:
                return None
            dtype, shape, sd, count = manifest
            keys = [pz.writer_key(key, r, count, sd) for r in range(count)]
            want = [[pz.Axis(th.AXIS_TP, r, count, sd)] for r in range(count)]
        else:
            tp = axes[pz.tp_index(axes)]
            if manifest is None:
                shape, sd, count = None, tp.split_dim, tp.size
            else:
                _, shape, sd, count = manifest
                if sd != tp.split_dim:
                    return _refuse(ctx, f"{key} was split along {sd}, not {tp.split_dim}")
            want = [pz.with_tp(axes, r, count) for r in range(count)]
            keys = [pz.shard_key(key, a) for a in want]
        objs = self._objects(keys)
        parts = []
        for k, a, o in zip(keys, want, objs):
            if o is None or not pz.matches(a, o[0]):
                return _refuse(ctx, f"shard {k} is missing or not the shard its key names")
            parts.append(tz.from_object_bytes(o[1], len(o[1])))
        whole = tz.concat(parts, sd)
        info = tz.tensor_info(whole)
        if shape is not None and info.shape != tuple(shape):
            return _refuse(ctx, f"shards of {key} join to {info.shape}, manifest says {shape}")
        meta = info.full_metadata()
        return meta, th.encode(meta) + tz.raw_bytes(info)

    def _resolve(self, ctx, key, target):
        """(metadata, object bytes) of what ``target`` asks of ``key``, or ``None``."""
        if target is None:
            mode, parallelism = "as_stored", None
        else:
            try:
                mode, parallelism = str(target.mode).lower(), target.parallelism
            except AttributeError:
                return _refuse(ctx, "ReadTarget must provide mode and parallelism")
            if mode not in pz.MODES:
                return _refuse(ctx, f"unsupported ReadTarget mode {target.mode!r}")
        if parallelism is None:
            if mode == "as_stored":
                return self._objects([key])[0]
            if mode == "full":
                got = self._gather(ctx, key, None)
                return got if got is not None else self._objects([key])[0]
            return _refuse(ctx, "a shard read needs a parallelism")
        axes = pz.parse(parallelism)
        if axes is None:
            return _refuse(ctx, f"invalid parallelism {parallelism!r}")
        has_tp = pz.tp_index(axes) is not None
        if mode == "shard":
            o = self._objects([pz.shard_key(key, axes)])[0]
            if o is not None and pz.matches(axes, o[0]):
                return o
            if pz.is_single_tp(axes):
                a = axes[0]
                o = self._objects([pz.writer_key(key, a.rank, a.size, a.split_dim)])[0]
                if o is not None and pz.matches(axes, o[0]):
                    return o
            if has_tp:
                return self._reshard(ctx, key, axes)
            return _refuse(ctx, f"no shard of {key} stored for {parallelism!r}")
        if mode == "full":
            if not has_tp:
                return _refuse(ctx, "full reconstruction requires a TP axis")
            return self._gather(ctx, key, axes)
        return _refuse(ctx, "as_stored reads take no parallelism")

    def _reshard(self, ctx, key, axes):
        """The TP shard ``axes`` asks for, cut from the tensor its stored shards (of another
        shard count) join to."""
        got = self._gather(ctx, key, axes)
        if got is None:
            return None
        meta, raw = got
        whole = tz.from_object_bytes(raw, len(raw))
        tp = axes[pz.tp_index(axes)]
        shape = tuple(meta.global_shape)
        if shape[tp.split_dim] % tp.size:
            return _refuse(ctx, f"dimension {tp.split_dim} of {shape} does not split into {tp.size}")
        start, length = th.shard_range(shape[tp.split_dim], tp.rank, tp.size)
        info = tz.tensor_info(tz.narrow(whole, tp.split_dim, start, length))
        smeta = pz.shard_metadata(meta.dtype, shape, info.shape, axes, info.nbytes)
        return smeta, th.encode(smeta) + tz.raw_bytes(info)

    def get_tensor_with_parallelism(self, key, target=None):
        """The tensor ``target`` (a ``ReadTarget``; ``None``: as stored) asks for, or
        ``None``."""
        got = self._resolve("get_tensor_with_parallelism", key, target)
        return None if got is None else tz.from_object_bytes(got[1], len(got[1]))

    def batch_get_tensor_with_parallelism(self, keys, targets=None):
        """``get_tensor_with_parallelism`` per key (``targets``: one per key, or ``None``)."""
        keys = list(keys)
        if targets is None:
            return self.batch_get_tensor(keys)
        ts = _requests("batch_get_tensor_with_parallelism", len(keys), targets, "targets")
        if ts is None:
            return [None] * len(keys)
        return [self.get_tensor_with_parallelism(k, t) for k, t in zip(keys, ts)]

    def get_tensor_with_parallelism_into(self, key, buffer_ptr, size, target=None):
        """``get_tensor_with_parallelism`` into a buffer: the object ([header][bytes]; a
        whole tensor for ``full``) is written at its start and the tensor returned is a
        view of it. ``None`` when nothing is found or the buffer is too small."""
        ctx = "get_tensor_with_parallelism_into"
        if isinstance(buffer_ptr, int) and buffer_ptr == 0:
            return _refuse(ctx, "null buffer")
        got = self._resolve(ctx, key, target)
        if got is None:
            return None
        raw = got[1]
        n = len(raw)
        room = size
        if not isinstance(buffer_ptr, int):
            view = memoryview(buffer_ptr)
            if view.readonly:
                return _refuse(ctx, "read-only buffer")
            room = min(room, view.nbytes)
        if n > room:
            return _refuse(ctx, f"buffer of {room} bytes too small for {n}")
        addr = tz.address(buffer_ptr)
        ctypes.memmove(addr, bytes(raw), n)
        return tz.view_at(addr, n)

    def batch_get_tensor_with_parallelism_into(self, keys, buffer_ptrs, sizes, targets=None):
        """``get_tensor_with_parallelism_into`` per key; ``None`` for every key when the
        lists do not line up."""
        keys = list(keys)
        n = len(keys)
        if len(buffer_ptrs) != n or len(sizes) != n:
            return [None] * n
        ts = _requests("batch_get_tensor_with_parallelism_into", n, targets, "targets")
        if ts is None:
            return [None] * n
        return [
            self.get_tensor_with_parallelism_into(k, p, s, t)
            for k, p, s, t in zip(keys, buffer_ptrs, sizes, ts)
        ]


def _peek(buf, size, n):
    n = min(n, size)
    if isinstance(buf, int):
        return memoryview((ctypes.c_uint8 * n).from_address(buf)).cast("B")
    return memoryview(buf).cast("B")[:n]
