"""The five-line examples in README.md and docs/python.md run as written (with the test
cluster's master address in place of the default one)."""

import re

import pytest

from conftest import REPO, run_python


def python_blocks(path, after):
    text = (REPO / path).read_text()
    text = text[text.index(after):]
    return re.findall(r"```python\n(.*?)```", text, re.S)[0]


@pytest.mark.parametrize("path,after", [("README.md", "## Using it from Python"), ("docs/python.md", "## Example")])
def test_documented_example_runs(cluster, path, after):
    code = python_blocks(path, after)
    assert "127.0.0.1:50051" in code
    code = code.replace("127.0.0.1:50051", cluster.master_addr) + "\nstore.remove_all(force=True)\nstore.close()\n"
    p = run_python(code)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.strip() == "b'world'", (out, err)
