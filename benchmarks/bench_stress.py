"""Server time of the Stress test when the severity moves back to a value already computed for the
photo (issue 33's target: within 150 ms). The Streamlit page is run headless (``AppTest``) on one
val scene: each severity of one corruption once (cold: the models run), then each again (cached);
the page's own timer (script start to end, printed in its caption) is read for every run. The
Gradio tab's answer function is timed on the same views.

    python -m benchmarks.bench_stress --weights weights --data ../shared/data/cityscapes_pairs/val [--scene 1.jpg]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--scene", default="1.jpg")
    ap.add_argument("--corruption", default="Fog")
    args = ap.parse_args(argv)
    os.environ["SEG_WEIGHTS_DIR"] = str(args.weights.resolve())
    os.environ["SEG_DATA_DIR"] = str(args.data.resolve())

    from streamlit.testing.v1 import AppTest

    from gradio_tabs.stress import stress_outputs
    from seg_core.data import read_pair
    from seg_core.predictor import Predictor
    from seg_core.serve.stress import StressService
    from ui.robustness import read_summary
    from ui.scenes import Scene

    photo, label = read_pair(args.data / args.scene)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app_pages" / "stress.py"), default_timeout=600)
    at.session_state["scene"] = Scene(args.scene, photo, label, source="gallery")
    at.run()
    at.selectbox(key="stress_corruption").set_value(args.corruption).run()
    drawn = {"cold": [], "cached": []}
    for phase in ("cold", "cached"):
        for s in (1, 2, 3, 4, 5, 0):
            at.slider(key="stress_severity").set_value(s).run()
            if at.exception:
                raise SystemExit(at.exception[0].value)
            text = " ".join(c.value for c in at.caption)
            drawn[phase].append(float(re.search(r"page drawn in (\d+) ms", text).group(1)))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    for phase, ms in drawn.items():
        print(f"Streamlit page, {phase}: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms "
              f"({len(ms)} severities; load {load})")

    service = StressService(Predictor.from_dir(args.weights))
    summary = read_summary(args.weights)
    corruption = args.corruption
    for s in range(6):
        stress_outputs(service, summary, args.data, args.scene, None, corruption, s)
    times = []
    for s in range(6):
        t0 = time.perf_counter()
        stress_outputs(service, summary, args.data, args.scene, None, corruption, s)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"Gradio answer, cached: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms (load {load})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
