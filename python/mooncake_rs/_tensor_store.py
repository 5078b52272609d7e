"""The tensor methods of ``MooncakeDistributedStore``, with Mooncake's names, arguments and
return conventions: puts return ``0`` or a negative code (a list for batches), gets return
a tensor or ``None``. A tensor object is its 304-byte header followed by its bytes, written
with one multi-buffer put (header and tensor memory, no copy of the tensor in Python).

Tensor-parallel forms store shard ``r`` of ``tp_size`` (split evenly along ``split_dim``)
under ``<key>_tp_<r>``, every shard in one batch; reads fetch one rank's shard.
"""

import ctypes

from . import _tensor_header as th
from . import _tensors as tz

INVALID = tz.INVALID_PARAMS
#: Mooncake's FILE_NOT_FOUND, what save_tensor_to_safetensor returns without a tensor.
FILE_NOT_FOUND = -1100


def tp_key(key, rank):
    """The key of tensor-parallel shard ``rank`` of ``key``."""
    return f"{key}_tp_{rank}"


class TensorMethods:
    """Mixed into ``MooncakeDistributedStore``; uses its byte-level methods."""

    # ----- writes -----

    def _write_infos(self, keys, infos, config, upsert, metas=None):
        """Writes each (key, TensorInfo, metadata); one code per key (INVALID for a key
        whose tensor was refused)."""
        codes = [INVALID] * len(keys)
        todo, ptrs, sizes = [], [], []
        for i, info in enumerate(infos):
            if info is None:
                continue
            meta = metas[i] if metas is not None else info.full_metadata()
            header = th.encode(meta)
            parts, lens = [header], [th.METADATA_SIZE]
            if info.nbytes:
                parts.append(info.ptr)
                lens.append(info.nbytes)
            todo.append(i)
            ptrs.append(parts)
            sizes.append(lens)
        if not todo:
            return codes
        put = self.batch_upsert_from_multi_buffers if upsert else self.batch_put_from_multi_buffers
        args = [[keys[i] for i in todo], ptrs, sizes]
        res = put(*args, config) if config is not None else put(*args)
        for i, rc in zip(todo, res):
            codes[i] = rc
        return codes

    def _write_tensors(self, keys, tensors, config=None, upsert=False):
        if len(keys) != len(tensors):
            return [INVALID] * len(keys)
        infos = []
        for t in tensors:
            try:
                infos.append(tz.tensor_info(t))
            except (ValueError, ImportError):
                infos.append(None)
        return self._write_infos(list(keys), infos, config, upsert)

    def _write_tp(self, base_keys, tensors, config, tp_size, split_dim, upsert=False):
        """Every shard of every tensor in one batch; per base key, 0 or the first failure."""
        keys, infos, metas, owner = [], [], [], []
        codes = [INVALID] * len(base_keys)
        for b, (key, t) in enumerate(zip(base_keys, tensors)):
            shards = self._tp_shards(t, tp_size, split_dim)
            if shards is None:
                continue
            for rank, (info, meta) in enumerate(shards):
                keys.append(tp_key(key, rank))
                infos.append(info)
                metas.append(meta)
                owner.append(b)
            codes[b] = 0
        res = self._write_infos(keys, infos, config, upsert, metas) if keys else []
        for b, rc in zip(owner, res):
            if codes[b] == 0 and rc != 0:
                codes[b] = rc
        return codes

    @staticmethod
    def _tp_shards(tensor, tp_size, split_dim):
        """(TensorInfo, shard metadata) per rank, or ``None`` when the tensor cannot be split
        evenly along ``split_dim`` (Mooncake supports uniform sharding only)."""
        try:
            full = tz.tensor_info(tensor)
        except (ValueError, ImportError):
            return None
        shape = full.shape
        if tp_size <= 0 or not 0 <= split_dim < len(shape) or shape[split_dim] % tp_size:
            return None
        out = []
        for rank in range(tp_size):
            start, length = th.shard_range(shape[split_dim], rank, tp_size)
            info = tz.tensor_info(tz.narrow(tensor, split_dim, start, length))
            meta = th.tp_shard(
                full.dtype, shape, info.shape, rank, tp_size, split_dim, info.nbytes
            )
            out.append((info, meta))
        return out

    def put_tensor(self, key, tensor):
        """Stores a tensor (header + bytes). 0 or a negative code."""
        return self._write_tensors([key], [tensor])[0]

    def batch_put_tensor(self, keys, tensors_list):
        """``put_tensor`` for several keys in one batch; one code per key."""
        if not keys:
            return []
        return self._write_tensors(keys, tensors_list)

    def upsert_tensor(self, key, tensor):
        """``put_tensor`` that replaces an existing value."""
        return self._write_tensors([key], [tensor], upsert=True)[0]

    def batch_upsert_tensor(self, keys, tensors_list):
        """``upsert_tensor`` for several keys."""
        if not keys:
            return []
        return self._write_tensors(keys, tensors_list, upsert=True)

    def pub_tensor(self, key, tensor, config=None):
        """``put_tensor`` with a ``ReplicateConfig``."""
        if not _preferred_ok(config):
            return INVALID
        return self._write_tensors([key], [tensor], config)[0]

    def batch_pub_tensor(self, keys, tensors_list, config=None):
        """``batch_put_tensor`` with a ``ReplicateConfig``."""
        if not keys or not _preferred_ok(config):
            return [INVALID] * len(keys)
        return self._write_tensors(keys, tensors_list, config)

    def upsert_pub_tensor(self, key, tensor, config=None):
        """``upsert_tensor`` with a ``ReplicateConfig``."""
        if not _preferred_ok(config):
            return INVALID
        return self._write_tensors([key], [tensor], config, upsert=True)[0]

    def batch_upsert_pub_tensor(self, keys, tensors_list, config=None):
        """``batch_upsert_tensor`` with a ``ReplicateConfig``."""
        if not keys or not _preferred_ok(config):
            return [INVALID] * len(keys)
        return self._write_tensors(keys, tensors_list, config, upsert=True)

    def put_tensor_with_tp(self, key, tensor, tp_rank=0, tp_size=1, split_dim=0):
        """Splits ``tensor`` into ``tp_size`` shards along ``split_dim`` and stores every one
        under ``<key>_tp_<rank>``; ``tp_size`` 1 stores it whole under ``key``."""
        if tp_size <= 1:
            return self.put_tensor(key, tensor)
        return self._write_tp([key], [tensor], None, tp_size, split_dim)[0]

    def batch_put_tensor_with_tp(
        self, base_keys, tensors_list, tp_rank=0, tp_size=1, split_dim=0
    ):
        """``put_tensor_with_tp`` for several tensors in one batch."""
        if tp_size <= 1:
            return self.batch_put_tensor(base_keys, tensors_list)
        if not base_keys or len(base_keys) != len(tensors_list):
            return [INVALID] * len(base_keys)
        return self._write_tp(base_keys, tensors_list, None, tp_size, split_dim)

    def pub_tensor_with_tp(self, key, tensor, config=None, tp_rank=0, tp_size=1, split_dim=0):
        """``put_tensor_with_tp`` with a ``ReplicateConfig``."""
        if not _preferred_ok(config):
            return INVALID
        if tp_size <= 1:
            return self.pub_tensor(key, tensor, config)
        return self._write_tp([key], [tensor], config, tp_size, split_dim)[0]

    def batch_pub_tensor_with_tp(
        self, base_keys, tensors_list, config=None, tp_rank=0, tp_size=1, split_dim=0
    ):
        """``batch_put_tensor_with_tp`` with a ``ReplicateConfig``."""
        if tp_size <= 1:
            return self.batch_pub_tensor(base_keys, tensors_list, config)
        if not base_keys or len(base_keys) != len(tensors_list) or not _preferred_ok(config):
            return [INVALID] * len(base_keys)
        return self._write_tp(base_keys, tensors_list, config, tp_size, split_dim)

    # ----- writes of ready-made [header][bytes] buffers -----

    def _check_tensor_buffers(self, ptrs, sizes):
        for p, n in zip(ptrs, sizes):
            if (isinstance(p, int) and p == 0) or n < th.METADATA_SIZE:
                return False
            head = _peek(p, n)
            if th.decode(head, n) is None:
                return False
        return True

    def put_tensor_from(self, key, buffer_ptr, size):
        """Stores a buffer already laid out as [header][tensor bytes]; the header is checked."""
        if not self._check_tensor_buffers([buffer_ptr], [size]):
            return INVALID
        return self.put_from(key, buffer_ptr, size)

    def batch_put_tensor_from(self, keys, buffer_ptrs, sizes):
        """``put_tensor_from`` for several keys; every buffer is checked first."""
        if not keys:
            return []
        if len(keys) != len(buffer_ptrs) or len(keys) != len(sizes):
            return [INVALID] * len(keys)
        if not self._check_tensor_buffers(buffer_ptrs, sizes):
            return [INVALID] * len(keys)
        return self.batch_put_from(keys, buffer_ptrs, sizes)

    def upsert_tensor_from(self, key, buffer_ptr, size):
        """``put_tensor_from`` that replaces an existing value."""
        if not self._check_tensor_buffers([buffer_ptr], [size]):
            return INVALID
        return self.upsert_from(key, buffer_ptr, size)

    def batch_upsert_tensor_from(self, keys, buffer_ptrs, sizes):
        """``batch_put_tensor_from`` that replaces existing values."""
        if not keys:
            return []
        if len(keys) != len(buffer_ptrs) or len(keys) != len(sizes):
            return [INVALID] * len(keys)
        if not self._check_tensor_buffers(buffer_ptrs, sizes):
            return [INVALID] * len(keys)
        return self.batch_upsert_from(keys, buffer_ptrs, sizes)

    def put_tensor_with_tp_from(
        self, key, buffer_ptr, size, tp_rank=0, tp_size=1, split_dim=0
    ):
        """Decodes a whole [header][bytes] buffer and stores its ``tp_size`` shards."""
        if tp_size <= 1:
            return self.put_tensor_from(key, buffer_ptr, size)
        return self.batch_put_tensor_with_tp_from(
            [key], [buffer_ptr], [size], tp_rank, tp_size, split_dim
        )[0]

    def batch_put_tensor_with_tp_from(
        self, base_keys, buffer_ptrs, sizes, tp_rank=0, tp_size=1, split_dim=0
    ):
        """``put_tensor_with_tp_from`` for several buffers."""
        if tp_size <= 1:
            return self.batch_put_tensor_from(base_keys, buffer_ptrs, sizes)
        if not base_keys or len(base_keys) != len(buffer_ptrs) or len(base_keys) != len(sizes):
            return [INVALID] * len(base_keys)
        tensors, codes = [], [INVALID] * len(base_keys)
        for p, n in zip(buffer_ptrs, sizes):
            ok = (not isinstance(p, int) or p != 0) and n >= th.METADATA_SIZE
            tensors.append(tz.from_object_bytes(_peek(p, n, n), n) if ok else None)
        live = [i for i, t in enumerate(tensors) if t is not None]
        res = self._write_tp(
            [base_keys[i] for i in live], [tensors[i] for i in live], None, tp_size, split_dim
        )
        for i, rc in zip(live, res):
            codes[i] = rc
        return codes

    # ----- reads -----

    def get_tensor(self, key):
        """The tensor stored under ``key``, or ``None``."""
        return self.batch_get_tensor([key])[0]

    def batch_get_tensor(self, keys):
        """``get_tensor`` for several keys in one round trip."""
        out = []
        for h in self.batch_get_buffer(list(keys)):
            out.append(None if h is None else tz.from_object_bytes(memoryview(h), h.size()))
        return out

    def get_tensor_into(self, key, buffer_ptr, size):
        """Reads the object into the buffer and returns the tensor as a view of it."""
        if isinstance(buffer_ptr, int) and buffer_ptr == 0:
            return None
        n = self.get_into(key, buffer_ptr, size)
        return tz.view_at(tz.address(buffer_ptr), n) if n > 0 else None

    def batch_get_tensor_into(self, keys, buffer_ptrs, sizes):
        """``get_tensor_into`` for several keys; a list of ``INVALID_PARAMS`` codes when the
        arguments do not line up, as Mooncake."""
        if len(keys) != len(buffer_ptrs) or len(keys) != len(sizes):
            return [INVALID] * len(keys)
        if any(isinstance(p, int) and p == 0 for p in buffer_ptrs):
            return [INVALID] * len(keys)
        res = self.batch_get_into(list(keys), list(buffer_ptrs), list(sizes))
        return [
            tz.view_at(tz.address(p), n) if n > 0 else None for p, n in zip(buffer_ptrs, res)
        ]

    def get_tensor_with_tp(self, key, tp_rank=0, tp_size=1, split_dim=0):
        """Rank ``tp_rank``'s shard (``key`` itself when ``tp_size`` is 1)."""
        return self.get_tensor(key if tp_size <= 1 else tp_key(key, tp_rank))

    def batch_get_tensor_with_tp(self, base_keys, tp_rank=0, tp_size=1):
        """``get_tensor_with_tp`` for several keys."""
        if tp_size <= 1:
            return self.batch_get_tensor(base_keys)
        return self.batch_get_tensor([tp_key(k, tp_rank) for k in base_keys])

    def get_tensor_with_tp_into(
        self, key, buffer_ptr, size, tp_rank=0, tp_size=1, split_dim=0
    ):
        """``get_tensor_with_tp`` into a buffer."""
        k = key if tp_size <= 1 else tp_key(key, tp_rank)
        return self.get_tensor_into(k, buffer_ptr, size)

    def batch_get_tensor_with_tp_into(
        self, base_keys, buffer_ptrs, sizes, tp_rank=0, tp_size=1
    ):
        """``batch_get_tensor_with_tp`` into buffers."""
        keys = base_keys if tp_size <= 1 else [tp_key(k, tp_rank) for k in base_keys]
        return self.batch_get_tensor_into(keys, buffer_ptrs, sizes)

    # ----- files -----

    def save_tensor_to_safetensor(self, key, file_name=None):
        """Writes the tensor under ``key`` to a safetensors file (named ``key`` when no
        file name is given). 0, ``FILE_NOT_FOUND`` when there is no tensor, or
        ``INVALID_PARAMS`` when the file cannot be written."""
        tensor = self.get_tensor(key)
        if tensor is None:
            return FILE_NOT_FOUND
        try:
            tz.save_file(key, tensor, key if file_name is None else file_name)
        except (ImportError, OSError, ValueError, TypeError):
            return INVALID
        return 0

    def load_tensor_from_safetensor(self, key=None, file_name=None):
        """Stores a tensor of a safetensors file (the one named ``key``, else the first)
        under ``key`` (or the file name) and returns it; ``None`` on failure."""
        if file_name is None:
            raise TypeError("load_tensor_from_safetensor() needs file_name")
        try:
            loaded = tz.load_file(file_name)
        except (ImportError, OSError, ValueError):
            return None
        if not loaded:
            return None
        store_key = file_name if key is None else key
        name = key if key is not None and key in loaded else next(iter(loaded))
        tensor = loaded[name]
        return tensor if self.put_tensor(store_key, tensor) == 0 else None

    # ----- CUDA -----

    def get_tensor_into_cuda(self, key, tensor):
        """Needs CUDA IPC through a dummy client: not in this build."""
        raise tz.no_cuda("get_tensor_into_cuda")

    def batch_get_tensor_into_cuda(self, keys, tensors_list):
        """Needs CUDA IPC through a dummy client: not in this build."""
        raise tz.no_cuda("batch_get_tensor_into_cuda")


def _preferred_ok(config):
    """Mooncake's check for the ``pub_`` forms: preferred segments, when given, name one
    segment per replica."""
    if config is None or not config.preferred_segments:
        return True
    return len(config.preferred_segments) == config.replica_num


def _peek(buf, size, n=th.METADATA_SIZE):
    """The first ``n`` bytes of a buffer argument (an address or a buffer object)."""
    n = min(n, size)
    if isinstance(buf, int):
        return memoryview((ctypes.c_uint8 * n).from_address(buf)).cast("B")
    return memoryview(buf).cast("B")[:n]
