"""generated/ is consistent or says it is not: every backend's __init__ carries a stamp of its generation, an
interrupted or refused write is found at import, a stale C++ build names the command that rebuilds it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchform.codegen.output import writer
from batchform.codegen.backends import all_backends
from batchform.codegen.errors import SpecError
from batchform.codegen.load.loader import REPO

GENERATED = REPO / "generated"
BACKENDS = tuple(all_backends())


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "generated"
    shutil.copytree(GENERATED, root, ignore=shutil.ignore_patterns("__pycache__", "build", "*.so"))
    return root


def _files(root: Path) -> dict[str, str]:
    return {rel: (root / rel).read_text(encoding="utf-8") for rel in writer.owned_files(root)}


def _checker(root: Path):
    """generated/__init__.py's _check_generation, bound to the tree at ``root``."""
    namespace = {"__file__": str(root / "__init__.py"), "__name__": "generated_copy"}
    exec(compile((root / "__init__.py").read_text(), str(root / "__init__.py"), "exec"), namespace)

    def consistent(backend: str) -> bool:
        stamp = re.search(r'_check_generation\(\s*__name__,\s*"(\w+)",\s*"(\w+)",?\s*\)',
                          (root / backend / "__init__.py").read_text())
        try:
            namespace["_check_generation"](f"batchform.generated.{backend}", stamp.group(1), stamp.group(2))
        except ImportError as error:
            assert "run `batchform generate`" in str(error) and f"generated/{backend}" in str(error)
            return False
        return True

    return consistent


def test_the_committed_tree_is_one_generation():
    check = _checker(GENERATED)
    assert all(check(b) for b in BACKENDS)


def test_importing_a_mixed_backend_names_the_fault(tmp_path):
    root = _tree(tmp_path)
    layers = root / "numpy" / "layers.py"
    layers.write_text(layers.read_text() + "\n\ndef from_another_generation():\n    pass\n")
    proc = subprocess.run([sys.executable, "-c", "import generated.numpy"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "generated/numpy is a mix" in proc.stderr and "run `batchform generate`" in proc.stderr
    layers.write_text(layers.read_text().split("\n\ndef from_another_generation")[0])
    (root / "manifest.py").write_text((root / "manifest.py").read_text() + "# another generation\n")
    assert not _checker(root)("numpy")


def test_an_interrupted_generate_never_leaves_a_backend_that_passes_its_check_but_is_mixed(tmp_path, monkeypatch):
    """Old tree = the committed one with a function added to every family module (restamped by hand);
    writing the committed tree over it is stopped after each k files in turn."""
    new = _files(GENERATED)
    changed = sorted(rel for rel in new if rel.split("/")[-1] not in writer.STAMPED and "/" in rel)
    assert len(changed) > 10
    real = writer.write_atomic
    for k in range(0, len(new) + 1, 3):
        root = _tree(tmp_path / str(k))
        for rel in changed:  # the "old" generation: different family modules, the same stamps
            (root / rel).write_text(new[rel] + "\n# old generation\n")
        count = [0]

        def stopping(path, text):
            if count[0] == k:
                raise KeyboardInterrupt
            count[0] += 1
            real(path, text)

        monkeypatch.setattr(writer, "write_atomic", stopping)
        try:
            writer.write_tree(new, root)
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(writer, "write_atomic", real)
        check = _checker(root)
        for backend in BACKENDS:
            own = {rel for rel in new if rel.startswith(f"{backend}/")}
            complete = all((root / rel).read_text() == new[rel] for rel in own) and \
                (root / "manifest.py").read_text() == new["manifest.py"]
            assert check(backend) == complete, (k, backend)


def test_a_folder_that_cannot_be_written_stops_generate_before_anything_is_written(tmp_path):
    root = _tree(tmp_path)
    new = _files(root)
    new["numpy/layers.py"] += "# changed\n"
    new["torch/layers.py"] += "# changed\n"
    shutil.rmtree(root / "torch")
    (root / "torch").write_text("not a folder")
    with pytest.raises(SpecError, match="nothing was written.*torch"):
        writer.write_tree(new, root)
    assert not (root / "numpy" / "layers.py").read_text().endswith("# changed\n")


def test_generated_files_have_normal_permissions():
    for rel in writer.owned_files(GENERATED):
        assert (GENERATED / rel).stat().st_mode & 0o044 == 0o044, rel


def test_a_stale_cpp_build_says_how_to_rebuild(tmp_path):
    """The compiled module carries the digest of the sources it was built from (bindings.cpp); a package other
    than batchform's own (here a copy, ``generated``) names the build-cpp command of its own folder."""
    import batchform.generated.cpp  # noqa: F401  (`make test` builds it; a missing build is an error, not a skip)
    root = _tree(tmp_path)
    built = next(GENERATED.joinpath("cpp").glob("_batchform_cpp*"))
    shutil.copy(built, root / "cpp" / built.name)
    init = root / "cpp" / "__init__.py"
    text = init.read_text()
    compiled = re.search(r'_COMPILED_GENERATION = "(\w+)"', text).group(1)
    init.write_text(text.replace(f'_COMPILED_GENERATION = "{compiled}"', '_COMPILED_GENERATION = "0" * 64'))
    # a generate that added a spec: new sources, stamps updated, the old compiled module left in place
    proc = subprocess.run([sys.executable, "-c", "import generated.cpp"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "older generated sources" in proc.stderr, proc.stderr
    assert f"run `batchform build-cpp --specs <your spec folders> --out {tmp_path / 'generated'}`" in proc.stderr
