"""The schedule core imports NumPy only: ``import preheat`` must not pull in torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKED = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
for blocked in ("transformers", "matplotlib"):
    sys.modules[blocked] = None
import {module}
import preheat
s = preheat.parse("linear_warmup(10) >> cosine_decay(90, end=0.1)")
assert s(5) == 0.5 and abs(s(100) - 0.1) < 1e-12
assert s.fingerprint() == preheat.from_dict(s.to_dict()).fingerprint()
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert loaded == ["torch"] and sys.modules["torch"] is None, loaded
print("ok")
"""

UNBLOCKED = """
import sys
import {module}
import preheat
preheat.warmup_cosine(10, 100)(5)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
assert bad == [], bad
print("ok")
"""


@pytest.mark.parametrize("module", ["preheat.schedules", "preheat"])
@pytest.mark.parametrize("template", [BLOCKED, UNBLOCKED], ids=["torch-blocked", "torch-installed"])
def test_import_does_not_import_torch(module, template):
    result = subprocess.run(
        [sys.executable, "-c", template.format(module=module)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
