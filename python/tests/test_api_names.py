"""Every public name of Mooncake's ``mooncake.store`` (module and classes) that
``mooncake_rs.store`` lacks, and every shared method whose arguments differ.

The wheel's names live in ``fixtures/mooncake_store_names.json`` (generated from the real
wheel by ``fixtures/gen_mooncake_names.py``, which records the version), so this test
does not need the wheel. What is still missing must equal ``NOT_YET`` exactly: a name
that goes missing again fails, and so does a name that was added without being taken off
the list.
"""

import inspect
import json
import re
from pathlib import Path

import mooncake_rs.store as ours

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "mooncake_store_names.json").read_text())

#: Names of the wheel that mooncake_rs.store does not have yet, by where they live
#: ("module" or a class name). Shrinks as they land; never grows.
NOT_YET = {
    "module": set(),
}

#: Shared methods whose parameters (names, order, defaults) do not match yet.
NOT_YET_SIGNATURES = set()


def missing_names():
    out = {}
    have = set(dir(ours))
    gone = sorted(set(FIXTURE["module"]) - have)
    if gone:
        out["module"] = set(gone)
    for cls, members in FIXTURE["classes"].items():
        c = getattr(ours, cls, None)
        if c is None:
            continue  # the class itself is counted under "module"
        gone = set(members) - set(dir(c))
        if gone:
            out[cls] = gone
    return out


def wheel_params(sig):
    """(name, has_default) of each parameter after ``self`` in a pybind11 signature line."""
    m = re.match(r"\w+\((.*)\) -> ", sig)
    if not m or "*args" in m.group(1):
        return None  # overloaded: pybind11 shows (*args, **kwargs)
    depth, cur, parts = 0, "", []
    for ch in m.group(1):
        depth += ch in "[(<"
        depth -= ch in "])>"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    params = []
    for p in parts[1:]:
        name = p.split(":")[0].strip()
        params.append((name, "=" in p))
    return params


def signature_mismatches():
    out = set()
    cls = ours.MooncakeDistributedStore
    for name, sig in FIXTURE["classes"]["MooncakeDistributedStore"].items():
        want = wheel_params(sig)
        if want is None or not hasattr(cls, name):
            continue
        try:
            got = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
        except (TypeError, ValueError):
            out.add(name)
            continue
        positional = [
            p for p in got if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(positional) < len(want):
            out.add(name)
            continue
        for (wname, wdefault), p in zip(want, positional):
            # Mooncake's arg0/arg1 names (no py::arg) cannot be passed by keyword upstream.
            if (not wname.startswith("arg") and p.name != wname) or (
                wdefault and p.default is p.empty
            ):
                out.add(name)
                break
        # A parameter beyond Mooncake's must have a default, or Mooncake's calls break.
        if any(p.default is p.empty for p in positional[len(want) :]):
            out.add(name)
    return out


def test_fixture_comes_from_the_wheel():
    assert FIXTURE["package"] == "mooncake-transfer-engine-non-cuda"
    assert FIXTURE["version"].startswith("0.3.13")
    assert len(FIXTURE["classes"]["MooncakeDistributedStore"]) == 97


def test_missing_names_are_exactly_the_not_yet_list():
    missing = missing_names()
    want = {k: v for k, v in NOT_YET.items() if v}
    assert missing == want, {
        "missing but not listed": {k: v - want.get(k, set()) for k, v in missing.items()},
        "listed but present": {k: v - missing.get(k, set()) for k, v in want.items()},
    }


def test_shared_methods_take_mooncakes_arguments():
    assert signature_mismatches() == NOT_YET_SIGNATURES


def test_wheel_params_parser():
    sig = (
        "put_from(self: S, key: str, buffer_ptr: int, size: int, "
        "config: R = <R object>) -> int"
    )
    assert wheel_params(sig) == [
        ("key", False),
        ("buffer_ptr", False),
        ("size", False),
        ("config", True),
    ]
    assert wheel_params("setup(*args, **kwargs)") is None
