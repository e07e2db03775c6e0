"""Fuzzing the image-decoding entry point: whatever bytes arrive, ``load_image`` returns an RGB
array or raises ``ImageError`` — never another exception."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from seg_core.inference import ImageError, load_image


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


SEEDS = [_encoded(fmt) for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")]


def _check(data: bytes) -> None:
    try:
        rgb = load_image(data)
    except ImageError as err:
        assert str(err)  # a message the user can read
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    _check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 10_000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_mutated_real_files(seed, cut, flips):
    data = bytearray(seed[: max(1, cut % (len(seed) + 1))])
    for pos, value in flips:
        data[pos % len(data)] = value
    _check(bytes(data))
