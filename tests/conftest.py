import pytest

from codegen.loader import load_all
from codegen.lower import lower


@pytest.fixture(scope="session")
def loaded_specs():
    return {s.name: s for s in load_all()}


@pytest.fixture(scope="session")
def lowered(loaded_specs):
    """spec name → its generated functions, in order (forward first)."""
    return {name: lower(s) for name, s in loaded_specs.items()}
