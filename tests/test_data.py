"""seg_core.data: pairs folders, the map-style dataset, whole-split loading and packs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seg_core.data import DataError, PairsDataset, list_pairs, load_pack, load_split, pack_split
from seg_core.palette import IGNORE_INDEX, NUM_CLASSES
from tests.conftest import synthetic_pair, write_pairs


def test_dataset_reads_synthetic_pairs(pairs_dir):
    ds = PairsDataset(pairs_dir)
    assert len(ds) == 6
    for i in range(len(ds)):
        photo, label = ds[i]
        assert photo.shape == (3, 64, 64) and photo.dtype == torch.uint8
        assert label.shape == (64, 64) and label.dtype == torch.uint8
        want_photo, want_label = synthetic_pair(64, seed=i)
        # JPEG (q95, chroma subsampling) blurs class borders; the interiors decode exactly.
        assert (label.numpy() == want_label).mean() > 0.85
        assert set(np.unique(label.numpy()).tolist()) <= set(range(NUM_CLASSES)) | {IGNORE_INDEX}
        # The photo noise is per pixel and JPEG smooths it (about 11 off on average; another
        # pair's photo is 25+ off).
        assert np.abs(photo.permute(1, 2, 0).numpy().astype(int) - want_photo).mean() < 16


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        PairsDataset(tmp_path / "nope")


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not a pair")
    with pytest.raises(DataError, match="no .jpg/.png"):
        list_pairs(tmp_path)


def test_non_pair_shape(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "square.jpg")
    ds = PairsDataset(tmp_path)
    with pytest.raises(DataError, match="twice as wide"):
        ds[0]
    with pytest.raises(DataError, match="square.jpg"):
        load_split(tmp_path)


def test_non_image_jpg(tmp_path):
    (tmp_path / "1.jpg").write_text("<html>not a jpeg</html>")
    with pytest.raises(DataError, match="not a readable image"):
        PairsDataset(tmp_path)[0]


@pytest.mark.parametrize("width, height", [(16000, 8000), (20000, 10000)])  # over our cap; over Pillow's bomb cap
def test_a_decompression_bomb_is_a_data_error(tmp_path, width, height):
    """A PNG header announcing a huge pair (a few hundred bytes on disk): refused before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    folder = tmp_path / "val"
    folder.mkdir()
    (folder / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                                   + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    with pytest.raises(DataError, match="a pair may have at most 80 megapixels|could be decompression bomb"):
        load_split(folder)


def test_natural_sort_order(tmp_path):
    for name in ("10.jpg", "2.jpg", "1.jpg", "b.png", "a.jpeg", "11.jpg", "readme.md"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_pairs(tmp_path)] == ["1.jpg", "2.jpg", "10.jpg", "11.jpg", "a.jpeg", "b.png"]


def test_load_split_from_folder(pairs_dir):
    images, labels = load_split(pairs_dir)
    assert images.shape == (6, 3, 64, 64) and images.dtype == torch.uint8
    assert labels.shape == (6, 64, 64) and labels.dtype == torch.uint8
    ds = PairsDataset(pairs_dir)
    for i in range(6):  # same order and content as the dataset
        assert torch.equal(images[i], ds[i][0]) and torch.equal(labels[i], ds[i][1])
    assert load_split(pairs_dir, limit=2)[0].shape[0] == 2


def test_load_split_mixed_sizes(tmp_path):
    write_pairs(tmp_path, n=1, h=64)
    photo, label = synthetic_pair(32)
    Image.fromarray(np.concatenate([photo, photo], axis=1)).save(tmp_path / "2.jpg")
    with pytest.raises(DataError, match="different sizes"):
        load_split(tmp_path)


def test_pack_round_trip(pairs_dir, tmp_path):
    summary = pack_split(pairs_dir, tmp_path / "packs" / "val.npz")
    assert summary["pairs"] == 6 and summary["bytes"] > 0
    assert not list((tmp_path / "packs").glob("*.tmp*"))  # the temp file was renamed away
    images, labels = load_pack(tmp_path / "packs" / "val.npz")
    ref_images, ref_labels = load_split(pairs_dir)
    assert images.shape == ref_images.shape and images.dtype == torch.uint8
    assert torch.equal(labels, ref_labels)  # labels are stored decoded, losslessly
    assert (images.float() - ref_images.float()).abs().mean() < 8  # photos re-encoded as JPEG
    # load_split dispatches on the suffix and honours limit.
    images2, labels2 = load_split(tmp_path / "packs" / "val.npz", limit=3)
    assert torch.equal(images2, images[:3]) and torch.equal(labels2, labels[:3])


def test_pack_needs_npz_suffix(pairs_dir, tmp_path):
    with pytest.raises(DataError, match=".npz"):
        pack_split(pairs_dir, tmp_path / "val.zip")


def _corrupt_packs(good: bytes):
    flipped = bytearray(good)
    flipped[len(flipped) // 3] ^= 0xFF
    return {
        "garbage": b"hello world" * 10,
        "truncated": good[: len(good) // 2],
        "header_only": good[:100],
        "flipped_byte": bytes(flipped),
    }


@pytest.mark.parametrize("kind", ["garbage", "truncated", "header_only", "flipped_byte"])
def test_corrupt_pack(pairs_dir, tmp_path, kind):
    good = tmp_path / "good.npz"
    pack_split(pairs_dir, good)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(_corrupt_packs(good.read_bytes())[kind])
    with pytest.raises(DataError, match="bad.npz"):
        load_pack(bad)


def test_pack_missing_keys(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="not a data pack"):
        load_pack(tmp_path / "other.npz")


def test_missing_pack(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope.npz")


def test_val_halves_fixed_disjoint_and_complete():
    from seg_core.data import val_halves

    select, judge = val_halves(400)
    assert len(select) == 200 and len(judge) == 200
    assert sorted(np.concatenate([select, judge]).tolist()) == list(range(400))
    again = val_halves(400)
    assert np.array_equal(select, again[0]) and np.array_equal(judge, again[1])
    # The seed is the contract with the training helper: these first indices must not drift.
    assert select[:8].tolist() == [0, 2, 5, 7, 9, 10, 13, 14]
    assert not np.array_equal(val_halves(400, seed=34)[0], select)
    assert len(val_halves(5)[1]) == 3
