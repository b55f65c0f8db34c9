"""`make test-quick` names its tests in the Makefile (QUICK_TESTS): each must exist and none may be one of the
slow tests the edit loop is meant to leave out, so the list cannot rot into an error or into minutes."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _quick_tests() -> list[str]:
    text = (REPO / "Makefile").read_text()
    block = re.search(r"^QUICK_TESTS :=((?:.*\\\n)*.*)$", text, re.MULTILINE)
    assert block, "the Makefile defines QUICK_TESTS"
    return block.group(1).replace("\\\n", " ").split()


def test_every_quick_test_exists_and_none_is_slow():
    names = _quick_tests()
    assert len(names) >= 20 and len(set(names)) == len(names)
    for name in names:
        path, _, test = name.partition("::")
        source = (REPO / path).read_text()
        assert (REPO / path).is_file() and path.startswith("tests/test_"), name
        assert "pytestmark = pytest.mark.slow" not in source, f"{path} is marked slow"
        if test:
            assert re.search(rf"^def {re.escape(test)}\(", source, re.MULTILINE), name


def test_the_staleness_check_is_in_the_quick_subset():
    assert "tests/test_generation.py::test_committed_generated_code_is_not_stale" in _quick_tests()
