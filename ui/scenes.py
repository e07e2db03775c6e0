"""The image the app shows, where it comes from, and the pictures made from it; no Streamlit here.

A ``Scene`` is one photo, with its label when it has one (a val pair, or an uploaded ``photo | label``
pair). Uploads are decoded with ``seg_core.inference.load_image``, so a bad file becomes an
``ImageError`` whose message can be shown as is: at screen size first (a big JPEG at a reduced
scale), at full size when a download or a page asks for it. Everything here is a pure function of its inputs,
so the pages stay thin and these are tested without a browser.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from seg_core import settings
from seg_core.data import DataError, PairVerdict, pair_verdict, read_pair, split_pair
from seg_core.inference import image_shape, load_image
from seg_core.serve.photos import SCREEN_MAX_SIDE
from seg_core.viz import fit_within

#: Where the val pairs live unless ``SEG_DATA_DIR`` says otherwise (never inside the repo: licence).
DEFAULT_DATA_DIR = settings.DEFAULT_DATA_DIR
#: Images are shown (and segmented, ``seg_core.serve.photos``) at most this wide; downloads keep the full size.
DISPLAY_MAX_SIDE = SCREEN_MAX_SIDE


def default_data_dir() -> Path:
    return settings.data_dir()


class Scene:
    """The selected image: its name, the photo, and the ``H x W`` label of train ids if known.

    ``key`` is a content hash (same pixels, or the same uploaded file: same key). An upload may come
    decoded at screen size only (``screen``), with ``full``, which decodes the full-size pixels
    when ``photo`` is first asked for (a download at full size, the Stress test page), and their
    ``shape``: ``scene_from_upload``."""

    def __init__(self, name: str, photo: np.ndarray | None = None, label: np.ndarray | None = None,
                 source: str = "upload", key: str = "", decode_seconds: float = 0.0, *,
                 screen: np.ndarray | None = None, full: Callable[[], np.ndarray] | None = None,
                 shape: tuple[int, ...] | None = None):
        if photo is None and (screen is None or full is None or shape is None or not key):
            raise ValueError("a scene needs its photo, or its screen-size photo, a decoder of the full one, its shape and a key")
        self.name, self.label, self.source = name, label, source  # source: "upload" or "gallery"
        self.decode_seconds = decode_seconds  # reading the file, shown once beside the models' times
        self._photo, self._full, self._screen = photo, full, screen
        self.shape = tuple(photo.shape) if photo is not None else tuple(shape)  # the full-size photo's
        if not key:
            digest = hashlib.sha1(np.ascontiguousarray(photo).tobytes())
            if label is not None:
                digest.update(np.ascontiguousarray(label).tobytes())
            key = digest.hexdigest()[:16]
        self.key = key

    def __repr__(self) -> str:
        return f"Scene({self.name!r}, {self.shape}, label={self.label is not None}, source={self.source!r}, key={self.key!r})"

    @property
    def photo(self) -> np.ndarray:
        """The photo at full size (decoded now if the scene came at screen size)."""
        if self._photo is None:  # (two threads asking at once decode it twice, harmlessly)
            self._photo = self._full()
        return self._photo

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


def upload_at_screen_size(data: bytes) -> tuple[np.ndarray, tuple[int, int, int], float]:
    """Uploaded bytes decoded at screen size (a JPEG at a reduced scale first, ``load_image``'s
    ``within``), the full-size shape, and the seconds it took; raises ``ImageError``."""
    t0 = time.perf_counter()
    screen = display_scale(load_image(data, within=DISPLAY_MAX_SIDE))
    return screen, image_shape(data), time.perf_counter() - t0


def upload_pair_verdict(screen: np.ndarray, shape: tuple[int, ...]) -> PairVerdict | None:
    """``pair_verdict`` of an upload whose full size is ``shape``, from its screen-size pixels
    (2:1 too: ``fit_within`` rounds a reduced odd size back); ``None`` when it is not 2:1."""
    return pair_verdict(screen) if shape[1] == 2 * shape[0] else None


def scene_from_upload(name: str, data: bytes, as_pair: bool | None = None,
                      decoded: tuple[np.ndarray, tuple[int, int, int], float] | None = None) -> Scene:
    """Uploaded bytes as a scene (raises ``ImageError`` with a message for the user): decoded at
    screen size (``decoded``: ``upload_at_screen_size(data)`` if already made), the full size
    when first asked; a photo | label pair (``as_pair``, ``None``: when ``upload_pair_verdict``
    says so) is split at full size."""
    screen, shape, seconds = decoded or upload_at_screen_size(data)
    if as_pair is None:
        as_pair = bool((verdict := upload_pair_verdict(screen, shape)) and verdict.is_pair)
    if as_pair and shape[1] == 2 * shape[0]:
        t0 = time.perf_counter()
        scene = scene_from_image(name, load_image(data), as_pair=True)
        scene.decode_seconds = seconds + time.perf_counter() - t0
        return scene
    return Scene(name, key="upload-" + hashlib.sha1(data).hexdigest()[:16], decode_seconds=seconds,
                 screen=screen, full=lambda: load_image(data), shape=shape)


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
