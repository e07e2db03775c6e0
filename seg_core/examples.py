"""The credit the apps show beside the shipped example scenes (``examples/``, KITTI, CC BY-NC-SA 3.0).

One text for both apps and the About page, so the licence's attribution reads the same wherever a
KITTI scene is drawn. Where the scenes live and when they are used: ``seg_core.settings.data_dir``.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

KITTI_URL = "https://www.cvlibs.net/datasets/kitti/eval_semseg.php?benchmark=semantics2015"
LICENCE_URL = "https://creativecommons.org/licenses/by-nc-sa/3.0/"
#: Markdown; both Streamlit and Gradio render it.
CREDIT = (f"Example scenes: frames of the [KITTI semantic segmentation benchmark]({KITTI_URL}) "
          f"(Geiger, Alhaija et al.), [CC BY-NC-SA 3.0]({LICENCE_URL}); cropped to 2:1 and resized "
          "to 256x256, void and blended border pixels set to ignore (`examples/ATTRIBUTION.md`).")
#: Said wherever a score over the whole set is shown: 16 scenes of another city and camera.
SMALL_SET = ("These are the 16 KITTI example scenes shipped with the app, not Cityscapes val: a small set "
             "from another city and camera, so the figures are noisy and lower than on Cityscapes.")

#: The example clip's name and what it is, for the Video page and tab.
CLIP_NAME = "kitti_pan.mp4"
CLIP_NOTE = ("Example clip: 24 frames (3 s) panned across the first KITTI example scene, made on this "
             "server from it (CC BY-NC-SA 3.0, as the scene).")


def pan_clip(path: str | Path, frames: int = 24, step: int = 5, fps: int = 8) -> Path:
    """A short H.264 clip panned across the first example scene (its 2:1 shape restored), written
    to ``path``: a video anyone may be shown, for a server with no clip of its own (a Space)."""
    from PIL import Image

    from .data import list_pairs, read_pair
    from .settings import EXAMPLES_DIR
    from .video import VideoWriter

    photo, _ = read_pair(list_pairs(EXAMPLES_DIR)[0])
    wide = np.asarray(Image.fromarray(photo).resize((2 * photo.shape[0], photo.shape[0]), Image.BICUBIC))
    width = wide.shape[1] - frames * step
    with VideoWriter(path, width, wide.shape[0], fps) as writer:
        for i in range(frames):
            writer.write(wide[:, i * step : i * step + width])
    return Path(path)


@lru_cache(maxsize=1)
def example_clip() -> Path:
    """``pan_clip`` made once per server process, in a temporary folder (never the repository)."""
    return pan_clip(Path(tempfile.mkdtemp(prefix="seg_example_clip_")) / CLIP_NAME)
