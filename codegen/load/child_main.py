"""The child process of :mod:`codegen.load.child`: loads the spec folders, telling the parent each module before
it imports it, then its verdict. Its own module, so that the loader and the preflight import each other in
one direction only (loader → child; child_main → loader)."""

from __future__ import annotations

import json
import os

from batchform.codegen.errors import SpecError
from batchform.codegen.load import loader


def child(write_end: int, folders: list[str]) -> None:
    """The child's side: load the folders, telling the parent each module first, then the verdict."""
    out = os.fdopen(write_end, "w", buffering=1)

    def tell(*message) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    loader._IN_CHILD = True
    loader._importing = lambda name, path: tell("importing", name, path)
    try:
        loader.load_all(spec_dirs=folders)
    except SpecError as exc:
        tell("error", str(exc))
        return
    tell("loaded")
