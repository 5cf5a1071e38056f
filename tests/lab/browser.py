"""Open a report in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
PROBE = """<script>
window.addEventListener("load", function () {
  var images = document.images, done = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { done++; }
  }
  document.body.setAttribute("data-probe", done + "/" + images.length);
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


def rendered_images(report: Path, scratch: Path) -> tuple[int, int]:
    """(images the browser decoded with a nonzero width, images on the page) for ``report``.

    A copy of the page gets a probe script that counts them on ``load``; Chromium's
    ``--dump-dom`` shows the count.
    """
    page = scratch / "probe.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", page.as_uri(), profile=scratch / "probe-profile")
    found = re.search(r'data-probe="(\d+)/(\d+)"', dom.stdout)
    assert found, f"no probe result; chromium said: {dom.stderr[-2000:]}"
    return int(found.group(1)), int(found.group(2))
