"""mooncake-rs: a distributed KV cache for LLM inference.

``from mooncake_rs.store import MooncakeDistributedStore`` gives Mooncake's Python store API
over mooncake-rs.
"""

__all__ = ["store"]
