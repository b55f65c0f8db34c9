"""Package layout of the wheel (the rest is in pyproject.toml): the repository keeps spec/, codegen/,
generated/, templates/ and cpp/ at its root, and the wheel installs them inside the batchform package.

Every folder with an ``__init__.py`` under a mapped root is a package; templates/ and cpp/ (no Python) are
data folders. Package data: every template and formatter configuration (codegen/output/ruff.toml,
codegen/backends/cpp/templates/.clang-format), the C++ runtime headers, sources and CMake files (cpp/), and the generated C++
sources (generated/cpp/*.hpp, *.cpp) — never a build product.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
#: installed package → repository folder
MAPPED = {"batchform.spec": "spec", "batchform.generated": "generated"}
#: folders whose every sub-folder is a package (Python modules and data): installed package → repository folder
DATA = {"batchform.codegen": "codegen", "batchform.cpp": "cpp"}
_SKIP = {"__pycache__", "build"}
_BUILD_PRODUCTS = {".so", ".pyd", ".dylib", ".o", ".a", ".pyc"}


def _packages(name: str, folder: str, python_only: bool) -> dict[str, str]:
    found = {}
    for directory in sorted([ROOT / folder, *(ROOT / folder).rglob("*")]):
        rel = directory.relative_to(ROOT / folder)
        if not directory.is_dir() or _SKIP & set(rel.parts) or any(p.startswith(".") for p in rel.parts):
            continue
        if python_only and not (directory / "__init__.py").is_file():
            continue
        found[".".join([name, *rel.parts])] = str(directory.relative_to(ROOT))
    return found


def _data(package_dir: dict[str, str]) -> dict[str, list[str]]:
    data = {}
    for package, folder in package_dir.items():
        files = [p.name for p in (ROOT / folder).iterdir()
                 if p.is_file() and p.suffix not in _BUILD_PRODUCTS and p.suffix != ".py"]
        if files:
            data[package] = sorted(files)
    return data


package_dir = _packages("batchform", "batchform", True)
for name, folder in MAPPED.items():
    package_dir.update(_packages(name, folder, True))
for name, folder in DATA.items():
    package_dir.update(_packages(name, folder, False))

setup(packages=sorted(package_dir), package_dir=package_dir, package_data=_data(package_dir))
