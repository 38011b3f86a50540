"""The spread of the published checkpoints' figures across CPU kernel paths (the basis of
tests/test_published.py's tolerance): evaluates every published checkpoint under each kernel
path and prints the largest difference from the manifest's figures.

    python tests/published_spread.py            # every path in VARIANTS, one process each
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {"this CPU": {}, "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
            "ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default": {"ONEDNN_MAX_CPU_ISA": "SSE41",
                                                                    "ATEN_CPU_CAPABILITY": "default"}}


def deviations() -> dict[str, dict[str, float]]:
    """``{name: {"slab psnr": d, ...}}``: |re-evaluated - manifest| in this process."""
    import kdmri.pretrained as pretrained
    from kdmri.datasets.demo import build_demo_data
    from kdmri.reporting.published import reevaluate

    published = {n: e for n, e in pretrained.read_manifest(pretrained.MANIFEST).items() if e.metrics}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        build_demo_data(Path(tmp) / "datasets")
        for name, e in sorted(published.items()):
            found = reevaluate(e, Path(tmp) / "datasets" / "demo", Path(tmp) / name)
            out[name] = {f"{t} {k}": abs(m[k] - e.metrics[t][k])
                         for t, m in found.items() for k in ("psnr", "ssim")}
    return out


if __name__ == "__main__":
    if "--one" in sys.argv:
        print(json.dumps(deviations()))
        sys.exit(0)
    for label, env in VARIANTS.items():
        res = subprocess.run([sys.executable, __file__, "--one"], env={**os.environ, **env},
                             capture_output=True, text=True, check=True)
        dev = json.loads(res.stdout.strip().splitlines()[-1])
        worst = {k: max(r[k] for r in dev.values()) for k in next(iter(dev.values()))}
        print(f"{label}: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
