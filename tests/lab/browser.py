"""Open a report in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
PROBE = """<script>
window.addEventListener("load", function () {
  var images = document.images, done = 0, inside = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { done++; }
    if (images[i].getBoundingClientRect().right <= window.innerWidth) { inside++; }
  }
  document.body.setAttribute("data-probe", done + "/" + images.length + "/" + inside + "/"
    + document.documentElement.scrollWidth + "/" + window.innerWidth);
});
</script></body>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile and no background networking."""
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (.ci/run installs it)")
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


@dataclass(frozen=True)
class Rendered:
    """What Chromium saw of a page: images decoded with a nonzero width (``loaded``) of
    ``images``, those whose right edge is inside the window (``inside``), and the page's
    ``scroll_width`` against the window's ``width`` (wider: the page scrolls sideways)."""

    loaded: int
    images: int
    inside: int
    scroll_width: int
    width: int


def rendered(report: Path, scratch: Path, width: int = 1400) -> Rendered:
    """Open ``report`` in a ``width``-pixel window: a copy of the page gets a probe script that
    measures it on ``load``; Chromium's ``--dump-dom`` shows the numbers."""
    page = scratch / f"probe-{width}.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},1000", page.as_uri(),
                   profile=scratch / f"probe-profile-{width}")
    found = re.search(r'data-probe="(\d+)/(\d+)/(\d+)/(\d+)/(\d+)"', dom.stdout)
    assert found, f"no probe result; chromium said: {dom.stderr[-2000:]}"
    return Rendered(*(int(group) for group in found.groups()))
