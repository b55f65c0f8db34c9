"""The code blocks of the documentation pages (docs/*.md), with what the page says about running each.

A fenced block may be preceded by an HTML comment that the site does not show:

- ``<!-- not run: REASON -->``: the block is not run by tests/test_docs_code.py, for the reason given (another
  test runs it, or it needs what a test cannot have: two machines, the whole set-up);
- ``<!-- spec: FAMILY/NAME.py -->``: a spec file; the test writes it into a spec folder, proves and generates it;
- ``<!-- spec fails: FAMILY/NAME.py -->``: a spec file whose proof must fail with the messages of the page's
  next ``text`` block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: The pages whose every code block runs: the tutorial, "Add a layer" and the guides.
RUN_PAGES = ["tutorial.md", "add-a-layer.md", *sorted(f"guides/{p.name}" for p in (DOCS / "guides").glob("*.md"))]
CODE = {"python", "sh", "bash"}

_BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]*?) -->\n)?^```(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^```\s*$",
                    re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    marker: str  # "" or the comment's text: "not run: …", "spec: …", "spec fails: …"

    @property
    def where(self) -> str:
        return f"docs/{self.page}, line {self.line}"


def blocks(page: str) -> list[Block]:
    text = (DOCS / page).read_text()
    return [Block(page, text[:m.start("code")].count("\n"), m.group("lang"), m.group("code"), m.group("marker") or "")
            for m in _BLOCK.finditer(text)]


def block(page: str, marker: str) -> str:
    """The one Python block of the page that contains ``marker``."""
    found = [b.code for b in blocks(page) if b.lang == "python" and marker in b.code]
    assert len(found) == 1, (page, marker, len(found))
    return found[0]
