"""The image the app shows, where it comes from, and the pictures made from it; no Streamlit here.

A ``Scene`` is one photo, with its label when it has one (a val pair, or an uploaded ``photo | label``
pair). Uploads are decoded with ``seg_core.inference.load_image``, so a bad file becomes an
``ImageError`` whose message can be shown as is. Everything here is a pure function of its inputs,
so the pages stay thin and these are tested without a browser.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from seg_core import settings
from seg_core.data import DataError, pair_verdict, read_pair, split_pair
from seg_core.inference import load_image
from seg_core.serve.photos import SCREEN_MAX_SIDE
from seg_core.viz import fit_within

#: Where the val pairs live unless ``SEG_DATA_DIR`` says otherwise (never inside the repo: licence).
DEFAULT_DATA_DIR = settings.DEFAULT_DATA_DIR
#: Images are shown (and segmented, ``seg_core.serve.photos``) at most this wide; downloads keep the full size.
DISPLAY_MAX_SIDE = SCREEN_MAX_SIDE


def default_data_dir() -> Path:
    return settings.data_dir()


@dataclass
class Scene:
    """The selected image: its name, the photo, and the ``H x W`` label of train ids if known."""

    name: str
    photo: np.ndarray
    label: np.ndarray | None = None
    source: str = "upload"  # "upload" or "gallery"
    key: str = field(default="", compare=False)  # content hash: same pixels, same key
    decode_seconds: float = field(default=0.0, compare=False)  # reading the file, shown once beside the models' times
    _screen: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            digest = hashlib.sha1(np.ascontiguousarray(self.photo).tobytes())
            if self.label is not None:
                digest.update(np.ascontiguousarray(self.label).tobytes())
            self.key = digest.hexdigest()[:16]

    def screen_photo(self) -> np.ndarray:
        """The photo at screen size (``display_scale``), made once: the callback that chose the
        scene and the page that shows it segment the same pixels."""
        if self._screen is None:
            self._screen = display_scale(self.photo)
        return self._screen


def is_two_to_one(image: np.ndarray) -> bool:
    h, w = image.shape[:2]
    return w == 2 * h


def looks_like_pair(image: np.ndarray) -> bool:
    """A 2:1 image whose right half is a colour label and left half a photo (``pair_verdict``)."""
    return pair_verdict(image).is_pair


def scene_from_image(name: str, image: np.ndarray, as_pair: bool | None = None) -> Scene:
    """A decoded image as a scene; a 2:1 image is split into photo and label when ``as_pair``
    (``None``: when it ``looks_like_pair``)."""
    if as_pair is None:
        as_pair = looks_like_pair(image)
    if as_pair and is_two_to_one(image):
        photo, label = split_pair(image, name)
        return Scene(name, np.ascontiguousarray(photo), label, "upload")
    return Scene(name, image, None, "upload")


def scene_from_upload(name: str, data: bytes, as_pair: bool | None = None) -> Scene:
    """Decode uploaded bytes (raises ``ImageError`` with a message for the user) into a scene."""
    return scene_from_image(name, load_image(data), as_pair)


def scene_from_file(path: str | Path) -> Scene:
    """A val pair file as a scene (raises ``DataError``)."""
    t0 = time.perf_counter()
    photo, label = read_pair(path)
    return Scene(Path(path).name, np.ascontiguousarray(photo), label, "gallery", decode_seconds=time.perf_counter() - t0)


def thumbnail(path: str | Path, side: int = 128) -> np.ndarray:
    """The photo half of a pair file, shrunk to ``side`` pixels high."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            if w == 2 * h:
                im = im.crop((0, 0, w // 2, h))
            im.thumbnail((4 * side, side))  # fit the height; keep the aspect
            return np.asarray(im)
    except OSError as err:
        raise DataError(f"{path} is not a readable image: {err}") from None


def page_of(items: list, page: int, per_page: int) -> list:
    """Items of 1-based ``page`` (clamped to the pages there are)."""
    pages = max(1, -(-len(items) // per_page))
    page = min(max(1, page), pages)
    return items[(page - 1) * per_page : page * per_page]


def display_scale(image: np.ndarray, nearest: bool = False) -> np.ndarray:
    """``image`` at most ``DISPLAY_MAX_SIDE`` on its long side, for the screen."""
    return fit_within(image, DISPLAY_MAX_SIDE, nearest)


def row_normalize(confusion: np.ndarray) -> np.ndarray:
    """Each row (true class) divided by its total; rows without pixels stay zero."""
    mat = np.asarray(confusion, dtype=np.float64)
    rows = mat.sum(1, keepdims=True)
    return np.divide(mat, rows, out=np.zeros_like(mat), where=rows > 0)


def present_classes(confusion: np.ndarray) -> np.ndarray:
    """Indices of the classes that occur as truth or as prediction."""
    mat = np.asarray(confusion)
    return np.flatnonzero((mat.sum(0) + mat.sum(1)) > 0)
