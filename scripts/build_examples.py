"""Build ``examples/``: 16 KITTI street scenes as 512x256 ``photo | colour label`` PNG pairs.

The pairs have the form of the Cityscapes pairs the models were trained on: each half is 256x256,
a 2:1 street scene squashed to a square.

The frames come from the KITTI semantic segmentation benchmark (``data_semantics``, CC BY-NC-SA 3.0),
whose labels use the Cityscapes label ids and colours. The only public copy reachable here is the
48-frame ``mini_test`` folder of github.com/atlan-antillia/TensorFlow-FlexUNet-Tiled-Image-Segmentation-
KITTI-Stereo-2015: ``images/2000k.png`` and ``masks/2000k.png`` are ``training/image_2`` and
``training/semantic_rgb`` frame ``k-1`` resized by OpenCV (bilinear) from about 1242x375 to 1536x512.
We checked that against the five originals another public repository holds (CaioChaves/Road-
Detection-KITTI, frames 000000-000004): the masks are bit-identical to ``cv2.resize`` of the
originals, the photos match them up to resampling (ATTRIBUTION, docs/examples.md).

What this script changes, per frame:
- a 2:1 window of the *original* geometry: 928x512 in the 1536x512 copy is 750x375 of the
  1242x375 frame (the copy stretched x by 1.237 and y by 1.365); of three positions (left, centre,
  right) the one showing the most classes, ties to the centre;
- photo: that window resized to 256x256 (Lanczos), as the Cityscapes pairs squash their 2048x1024 photos;
- label: a pixel whose colour is exactly one of the 19 train-class colours keeps its class; every
  other pixel (void classes, and the colours the bilinear resize blended across class borders)
  becomes ignore, drawn black; then nearest-neighbour to 256x256, so every label pixel is exact.

    python scripts/build_examples.py --git-dir /work/.mirror/atlan-antillia+TensorFlow-FlexUNet-Tiled-Image-Segmentation-KITTI-Stereo-2015/repo
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seg_core.palette import COLORS, IGNORE_INDEX, colorize  # noqa: E402

REPO = "atlan-antillia/TensorFlow-FlexUNet-Tiled-Image-Segmentation-KITTI-Stereo-2015"
COMMIT = "e10c34a0432a6c9fe5dc949fb27bbcf03d4b8f4a"
FOLDER = "projects/TensorFlowFlexUNet/KITTI/mini_test"
LICENCE = "CC BY-NC-SA 3.0"
#: Every third of the 48 frames (first, fourth, ...): 16 scenes, about 2 MB as PNG pairs.
FRAMES = tuple(range(20001, 20049, 3))
COPY_SIZE = (1536, 512)
#: 750x375 of a 1242x375 frame in the 1536x512 copy: 750 * 1536 / 1242 = 927.5 -> 928.
WINDOW_W = 928
OUT_SIZE = (256, 256)  # one half of a pair
MIN_SHARE = 0.002  # a class counts as shown in a window from 0.2 % of its pixels


def git_blob(git_dir: Path, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{COMMIT}:{path}"],
                          check=True, capture_output=True).stdout


def exact_train_ids(rgb: np.ndarray) -> np.ndarray:
    """Train id where the colour is exactly a train-class colour, ``IGNORE_INDEX`` elsewhere."""
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.full(rgb.shape[:2], IGNORE_INDEX, np.uint8)
    for i, (r, g, b) in enumerate(COLORS.astype(np.int32)):
        out[key == ((r << 16) | (g << 8) | b)] = i
    return out


def best_window(label: np.ndarray) -> int:
    """Left edge of the window (left, centre or right) showing the most classes; ties to the centre."""
    starts = [(COPY_SIZE[0] - WINDOW_W) // 2, 0, COPY_SIZE[0] - WINDOW_W]

    def classes(x0: int) -> int:
        win = label[:, x0 : x0 + WINDOW_W]
        counts = np.bincount(win[win != IGNORE_INDEX], minlength=len(COLORS))
        return int((counts >= MIN_SHARE * win.size).sum())

    return max(starts, key=classes)  # max keeps the first of equals: the centre


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build_pair(photo_png: bytes, mask_png: bytes) -> tuple[np.ndarray, int, float]:
    """The ``256 x 512`` pair, the window's left edge, and the share of ignore pixels."""
    photo = np.asarray(Image.open(io.BytesIO(photo_png)).convert("RGB"))
    mask = np.asarray(Image.open(io.BytesIO(mask_png)).convert("RGB"))
    if photo.shape[1::-1] != COPY_SIZE or mask.shape[1::-1] != COPY_SIZE:
        raise SystemExit(f"expected {COPY_SIZE} images, got {photo.shape} and {mask.shape}")
    label = exact_train_ids(mask)
    x0 = best_window(label)
    box = (x0, 0, x0 + WINDOW_W, COPY_SIZE[1])
    small_photo = np.asarray(Image.fromarray(photo).crop(box).resize(OUT_SIZE, Image.LANCZOS))
    small_label = np.asarray(Image.fromarray(label).crop(box).resize(OUT_SIZE, Image.NEAREST))
    return np.hstack([small_photo, colorize(small_label)]), x0, float((small_label == IGNORE_INDEX).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--git-dir", type=Path, required=True, help=f"a clone (bare is fine) of {REPO}")
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    for n, frame in enumerate(FRAMES, 1):
        sources = {kind: f"{FOLDER}/{kind}/{frame}.png" for kind in ("images", "masks")}
        blobs = {kind: git_blob(args.git_dir, path) for kind, path in sources.items()}
        pair, x0, ignored = build_pair(blobs["images"], blobs["masks"])
        data = png(pair)
        name = f"kitti_{frame - 20001:06d}_10.png"
        (args.out / name).write_bytes(data)
        entries.append({
            "file": name,
            "kitti_frame": f"data_semantics/training/image_2/{frame - 20001:06d}_10.png",
            "sources": [{"path": path, "bytes": len(blobs[kind]), "sha256": hashlib.sha256(blobs[kind]).hexdigest()}
                        for kind, path in sources.items()],
            "window": {"x": x0, "y": 0, "w": WINDOW_W, "h": COPY_SIZE[1], "of": list(COPY_SIZE)},
            "ignored_share": round(ignored, 4),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
        print(f"{n:2d}/{len(FRAMES)} {name}: window x={x0}, {ignored:.1%} ignore, {len(data) / 1024:.0f} KiB")
    manifest = {
        "dataset": "KITTI semantic segmentation benchmark (data_semantics), training split",
        "licence": LICENCE,
        "licence_url": "https://creativecommons.org/licenses/by-nc-sa/3.0/",
        "source_repository": f"https://github.com/{REPO}",
        "source_commit": COMMIT,
        "built_by": "scripts/build_examples.py",
        "format": "256x256 photo | 256x256 colour label (Cityscapes train-class colours, black = ignore), PNG",
        "scenes": entries,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(entries)} scenes, {sum(e['bytes'] for e in entries) / 2**20:.2f} MiB -> {args.out}")


if __name__ == "__main__":
    main()
