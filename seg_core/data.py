"""Reading the pairs data: folders of ``photo | label`` JPEGs, and compact packs of a whole split.

A pair file is ``H x 2H``: the photo on the left half, the colour label on the right half. Training
holds a whole split in memory as uint8 tensors (``load_split``); a *pack* (``pack_split``) is the
same split in one ``.npz`` file (photos re-encoded as JPEG, labels as decoded class maps, deflated)
that loads in seconds and is small enough to travel to a GPU machine. ``.npz`` is read with
``allow_pickle=False``: a pack is data, never code.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .files import atomic_path
from .palette import decode_label, nearest_palette

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
PACK_SUFFIX = ".npz"


#: Largest pair file read (two 40-megapixel halves); Cityscapes pairs are 0.13 megapixels.
MAX_PAIR_PIXELS = 80_000_000


class DataError(ValueError):
    """The data on disk is missing or not in the expected form."""


def natural_key(path: Path) -> tuple:
    """Sort key that puts ``2.jpg`` before ``10.jpg``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def list_pairs(folder: str | Path) -> list[Path]:
    """The pair files of a folder in natural order (``2.jpg`` before ``10.jpg``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist (expected a folder of photo|label pairs)")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise DataError(f"data folder {folder} holds no .jpg/.png pair files")
    return files


def split_pair(pair: np.ndarray, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Split an ``H x 2H x 3`` pair into the photo and the decoded ``H x H`` label."""
    h, w = pair.shape[:2]
    if w != 2 * h:
        raise DataError(f"{name} is {w}x{h}; a pair must be twice as wide as high (photo | label)")
    return pair[:, : w // 2], decode_label(np.ascontiguousarray(pair[:, w // 2 :]))


#: A half is taken for a colour label when this share of its pixels lies within ``LABEL_NEAR`` of a
#: Cityscapes colour (classes and void) *and* has the same colour as its right and lower neighbours.
#: The val labels lie well above it, photos (also darkened or grey) well below (docs/pairs.md).
LABEL_MIN_FLAT = 0.38
LABEL_NEAR = 10.0  # RGB distance: JPEG noise of a label, far tighter than a photo's colours
_SAMPLE_SIDE = 128  # a label's regions survive a stride; 2048x1024 is decided in milliseconds


def label_likeness(half: np.ndarray) -> float:
    """Share of ``half``'s pixels that sit on a Cityscapes colour in a flat region (0 for a photo,
    about 0.7 for a colour label)."""
    step = max(1, -(-max(half.shape[:2]) // _SAMPLE_SIDE))
    idx, dist = nearest_palette(np.ascontiguousarray(half[::step, ::step]))
    idx = np.where(dist <= LABEL_NEAR, idx, -1)
    if min(idx.shape) < 2:
        return 0.0
    corner = idx[:-1, :-1]
    flat = (corner >= 0) & (corner == idx[1:, :-1]) & (corner == idx[:-1, 1:])
    return float(flat.mean())


@dataclass(frozen=True)
class PairVerdict:
    """Whether an image is a ``photo | label`` pair, and why, in one line for the user."""

    is_pair: bool
    reason: str


def pair_verdict(image: np.ndarray) -> PairVerdict:
    """A pair is 2:1, its right half a colour label and its left half not one (a photo)."""
    h, w = image.shape[:2]
    if w != 2 * h:
        return PairVerdict(False, f"One photo: {w}x{h} is not twice as wide as high, so it is no photo | label pair.")
    left, right = label_likeness(image[:, : w // 2]), label_likeness(image[:, w // 2 :])
    shares = f"{right:.0%} of the right half and {left:.0%} of the left half are flat Cityscapes colours"
    if right < LABEL_MIN_FLAT:
        return PairVerdict(False, f"One photo: only {shares} (a colour label: over {LABEL_MIN_FLAT:.0%}).")
    if left >= LABEL_MIN_FLAT:
        return PairVerdict(False, f"One image: {shares}, so both halves look like labels.")
    return PairVerdict(True, f"A photo | label pair: {shares}.")


def read_pair(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair file: ``(photo HxWx3 uint8, label HxW uint8 train ids)``."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PAIR_PIXELS:  # from the header: a bomb is refused before decoding
                raise DataError(f"{path} is {im.width}x{im.height}; a pair may have at most "
                                f"{MAX_PAIR_PIXELS / 1e6:.0f} megapixels")
            pair = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise DataError(f"{path} is not a readable image: {err}") from None
    return split_pair(pair, str(path))


class PairsDataset(torch.utils.data.Dataset):
    """A pairs folder as a map-style dataset of ``(photo 3xHxW uint8, label HxW uint8)`` tensors."""

    def __init__(self, folder: str | Path):
        self.files = list_pairs(folder)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        photo, label = read_pair(self.files[i])
        return torch.from_numpy(photo.copy()).permute(2, 0, 1), torch.from_numpy(label)


def _stack(pairs: list[tuple[np.ndarray, np.ndarray]], source: str) -> tuple[torch.Tensor, torch.Tensor]:
    shapes = {p.shape for p, _ in pairs}
    if len(shapes) != 1:
        raise DataError(f"{source}: pairs have different sizes {sorted(shapes)}; resize them to one size")
    images = torch.from_numpy(np.stack([p for p, _ in pairs])).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(np.stack([lab for _, lab in pairs]))
    return images, labels


def load_split(source: str | Path, limit: int | None = None, workers: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split in memory: ``(images N x 3 x H x W uint8, labels N x H x W uint8)``.

    ``source`` is a pairs folder or a ``.npz`` pack; ``limit`` keeps the first N pairs.
    """
    source = Path(source)
    if source.suffix == PACK_SUFFIX:
        return load_pack(source, limit)
    files = list_pairs(source)[:limit]
    with ThreadPoolExecutor(workers) as pool:
        pairs = list(pool.map(read_pair, files))
    return _stack(pairs, str(source))


def pack_split(folder: str | Path, out: str | Path, quality: int = 85) -> dict:
    """Write a pairs folder as one ``.npz`` pack; returns a summary (count, bytes)."""
    files = list_pairs(folder)
    blobs, labels = [], []
    for path in files:
        photo, label = read_pair(path)
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, format="JPEG", quality=quality)
        blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        labels.append(label)
    if len({lab.shape for lab in labels}) != 1:
        raise DataError(f"{folder}: pairs have different sizes; a pack needs one size")
    out = Path(out)
    if out.suffix != PACK_SUFFIX:
        raise DataError(f"a pack file must end in {PACK_SUFFIX}, got {out}")
    with atomic_path(out, suffix=PACK_SUFFIX) as tmp:
        np.savez_compressed(
            tmp,
            jpeg=np.concatenate(blobs),
            offsets=np.cumsum([0] + [len(b) for b in blobs]),
            labels=np.stack(labels),
            names=np.array([p.name for p in files]),
            quality=np.array(quality),
        )
    return {"pairs": len(files), "bytes": out.stat().st_size, "path": str(out)}


def load_pack(path: str | Path, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a pack written by ``pack_split`` straight into uint8 tensors."""
    from torchvision.io import decode_jpeg

    path = Path(path)
    if not path.is_file():
        raise DataError(f"pack {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            jpeg, offsets, labels = z["jpeg"], z["offsets"], z["labels"]
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # truncated/corrupt zip
        raise DataError(f"{path} is not a data pack written by pack_split: {err}") from None
    n = len(labels) if limit is None else min(limit, len(labels))
    data = torch.from_numpy(jpeg)
    blobs = [data[offsets[i] : offsets[i + 1]] for i in range(n)]
    images = torch.stack(decode_jpeg(blobs))
    return images, torch.from_numpy(labels[:n].copy())


#: Seed of ``val_halves``: fixed once (issue 33) so the benchmark and the training helper split alike.
VAL_HALVES_SEED = 33


def val_halves(n: int, seed: int = VAL_HALVES_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The seeded halves of a split of ``n`` pairs in ``list_pairs`` order: ``(select, judge)``
    sorted index arrays. Checkpoints are chosen on *select*; a model is judged on *judge* only,
    so the judgement is not biased by the choice (with odd ``n`` judge gets the extra pair)."""
    if n < 2:
        raise DataError(f"a split needs at least 2 pairs to halve, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])
