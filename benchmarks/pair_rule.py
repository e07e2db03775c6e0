"""How label-like are the halves of real images? The numbers behind ``seg_core.data.pair_verdict``.

``label_likeness`` of each val label (right halves), of each val photo (left halves), and of the
photos darkened to 30 % (black is a void colour) and made grey (grey is near "building" and
"pole"): an upload is a pair only when its right half is over ``LABEL_MIN_FLAT`` and its left
half under it, so the labels' minimum and the photos' maximum must lie on either side.

    python -m benchmarks.pair_rule --data ../shared/data/cityscapes_pairs/val
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from seg_core.data import LABEL_MIN_FLAT, label_likeness, list_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder of photo | label pairs")
    args = parser.parse_args()
    kinds: dict[str, list[float]] = {"label": [], "photo": [], "photo darkened": [], "photo grey": []}
    for path in list_pairs(args.data):
        with Image.open(path) as im:
            pair = np.asarray(im.convert("RGB"))
        photo, label = pair[:, : pair.shape[1] // 2], pair[:, pair.shape[1] // 2 :]
        kinds["label"].append(label_likeness(label))
        kinds["photo"].append(label_likeness(photo))
        kinds["photo darkened"].append(label_likeness((photo * 0.3).astype(np.uint8)))
        kinds["photo grey"].append(label_likeness(np.repeat(photo.mean(-1, keepdims=True), 3, -1).astype(np.uint8)))
    print(f"threshold LABEL_MIN_FLAT = {LABEL_MIN_FLAT}")
    for kind, values in kinds.items():
        v = np.array(values)
        print(f"{kind:>15} n={len(v)}  min {v.min():.3f}  median {np.median(v):.3f}  max {v.max():.3f}")


if __name__ == "__main__":
    main()
