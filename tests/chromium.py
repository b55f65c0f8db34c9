"""Headless Chromium for the rendering tests: open a page with a measuring script, read back what it measured.

The script runs at ``load`` and writes its result (a list of words) into ``body[data-measured]``, which
``--dump-dom`` prints. Nothing is fetched: the pages are local files that load no URL.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                None)
SKIP_REASON = ("no chromium on this machine (`apt-get install chromium` to run this rendering check); the "
               "structure tests still run")

#: Words for what the page shows: fractions ('stacked' or 'inline'), tables of cases, the first superscript
#: ('raised' or 'flat'), and every place where math is cut off: a clipping box that cuts a formula's glyph
#: boxes vertically ('cut'), a formula box that scrolls vertically ('vscroll') or — with ``fits`` — sideways
#: ('hscroll'), the page wider than the window ('page-wider'), text that runs off the window ('runs-off').
MEASURE = """
function measureMath(fits) {
  const out = [];
  for (const frac of document.querySelectorAll('mfrac')) {
    const [top, bottom] = frac.children;
    const a = top.getBoundingClientRect(), b = bottom.getBoundingClientRect();
    out.push(a.bottom <= b.top + 0.5 && a.width > 0 ? 'stacked' : 'inline');
  }
  for (const table of document.querySelectorAll('mtable')) {
    const [first, second] = table.children;
    if (second) out.push(first.getBoundingClientRect().bottom <= second.getBoundingClientRect().top + 0.5 ? 'stacked' : 'inline');
  }
  const sup = document.querySelector('msup');
  const base = sup.children[0].getBoundingClientRect(), up = sup.children[1].getBoundingClientRect();
  out.push(up.top < base.top ? 'raised' : 'flat');
  const width = document.documentElement.clientWidth;
  for (const m of document.querySelectorAll('math')) {
    const name = m.textContent.replace(/\\s+/g, '').slice(0, 24);
    const boxes = [...m.querySelectorAll('*')].map(e => e.getBoundingClientRect()).filter(b => b.width || b.height);
    for (let box = m; box && box !== document.body; box = box.parentElement) {
      const style = getComputedStyle(box);
      if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
      const r = box.getBoundingClientRect(), top = r.top + box.clientTop, bottom = top + box.clientHeight;
      if (boxes.some(b => b.top < top - 0.5 || b.bottom > bottom + 0.5)) out.push('cut:' + name);
      if (box.scrollHeight > box.clientHeight + 1) out.push('vscroll:' + name);
      if (fits && box.scrollWidth > box.clientWidth + 1) out.push('hscroll:' + name);
    }
  }
  if (document.documentElement.scrollWidth > width + 1) out.push('page-wider');
  for (const e of document.querySelectorAll('p, li, td, th, span')) {
    if (e.closest('pre, math')) continue;
    if (e.getBoundingClientRect().right > width + 1) out.push('runs-off:' + e.textContent.slice(0, 40));
  }
  return out;
}
"""


def measure(page: Path, script: str, width: int = 1400, folder: Path | None = None) -> list[str]:
    """Open a copy of ``page`` (beside it, so that its relative links resolve, or in ``folder``) with
    ``script`` appended (JavaScript that sets ``document.body.dataset.measured``) at a window ``width`` px wide."""
    copy = (folder or page.parent) / f"measure-{width}-{page.name}"
    text = page.read_text()
    copy.write_text(text.replace("</body>", f"<script>{MEASURE}\n{{\n{script}\n}}</script></body>"))  # a block: its own names
    try:
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
                              f"--window-size={width},1200", "--virtual-time-budget=5000", "--dump-dom",
                              copy.as_uri()], capture_output=True, text=True, timeout=120, check=False).stdout
    finally:
        copy.unlink()
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, dom[-2000:]
    return [w for w in found.group(1).split("|") if w]
