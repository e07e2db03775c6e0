"""The shipped KITTI example scenes: the files match their manifest, and a Space-like run (``SPACE_ID``
set, no ``SEG_DATA_DIR``, no Cityscapes beside the repo) shows them on every page that needs scenes.

They are in the repository, so nothing here skips. The page tests use the tiny test checkpoints:
they check that the pages work on the real scenes, not how good the models are (the model card).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from seg_core import examples, settings
from seg_core.data import list_pairs, read_pair
from seg_core.files import file_sha256
from seg_core.palette import COLORS, IGNORE_INDEX
from tests.conftest import ROOT
from tests.test_app import grid_captions, no_exception, page, texts

EXAMPLES = ROOT / "examples"
MANIFEST = json.loads((EXAMPLES / "manifest.json").read_text())


def test_manifest_names_every_file_with_its_hash_and_licence():
    files = list_pairs(EXAMPLES)
    assert 12 <= len(files) <= 30
    assert sorted(e["file"] for e in MANIFEST["scenes"]) == sorted(p.name for p in files)
    assert MANIFEST["licence"] == "CC BY-NC-SA 3.0" and MANIFEST["source_commit"]
    for entry in MANIFEST["scenes"]:
        path = EXAMPLES / entry["file"]
        assert file_sha256(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
        assert len(entry["sources"]) == 2 and all(len(s["sha256"]) == 64 for s in entry["sources"])
    assert sum(p.stat().st_size for p in files) < 4 * 2**20  # a few MB in all
    assert "CC BY-NC-SA 3.0" in (EXAMPLES / "ATTRIBUTION.md").read_text()


def test_labels_are_exact_train_class_colours():
    """PNG labels: every pixel of a label half is a class colour or black (ignore), so decoding is exact."""
    allowed = {tuple(c) for c in COLORS} | {(0, 0, 0)}
    seen = set()
    for path in list_pairs(EXAMPLES):
        photo, label = read_pair(path)
        assert photo.shape == (256, 256, 3) and label.shape == (256, 256)
        from PIL import Image

        right = np.asarray(Image.open(path).convert("RGB"))[:, 256:].reshape(-1, 3)
        assert {tuple(c) for c in np.unique(right, axis=0)} <= allowed
        assert 0.5 < float((label != IGNORE_INDEX).mean())
        seen |= set(np.unique(label).tolist())
    assert len(seen - {IGNORE_INDEX}) >= 15  # street scenes: most of the 19 classes occur


@pytest.fixture
def space(monkeypatch, weights_dir, tmp_path):
    """A Space: public, no data folder named, no Cityscapes pairs beside the repository."""
    monkeypatch.setenv("SPACE_ID", "org/space")
    monkeypatch.delenv("SEG_DATA_DIR", raising=False)
    monkeypatch.delenv("SEG_PUBLIC", raising=False)
    monkeypatch.setenv("SEG_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(settings, "DEFAULT_DATA_DIR", tmp_path / "no-cityscapes")


def test_data_dir_prefers_the_named_folder_then_cityscapes_then_the_examples(monkeypatch, tmp_path):
    monkeypatch.delenv("SEG_DATA_DIR", raising=False)
    monkeypatch.setattr(settings, "DEFAULT_DATA_DIR", tmp_path / "absent")
    assert settings.data_dir() == settings.EXAMPLES_DIR and settings.is_examples(settings.data_dir())
    (tmp_path / "val").mkdir()
    monkeypatch.setattr(settings, "DEFAULT_DATA_DIR", tmp_path / "val")
    assert settings.data_dir() == tmp_path / "val" and not settings.is_examples(tmp_path / "val")
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "mine"))
    assert settings.data_dir() == tmp_path / "mine"


def test_space_landing_opens_on_the_first_example_with_its_masks(space):
    at = page("compare").run()
    no_exception(at)
    assert at.session_state["scene"].name == "kitti_000000_10.png"
    assert any(c.startswith("U-Net (") for c in grid_captions(at))
    assert examples.CREDIT in texts(at.caption)
    assert any("KITTI scenes" in e.label for e in at.expander)


def test_space_ground_truth_page_offers_the_gallery_and_scores_an_example(space):
    at = page("ground_truth").run()
    no_exception(at)
    assert len(at.image) == 16  # the gallery's thumbnails
    at.button(key="gallery_kitti_000003_10.png").click().run()
    no_exception(at)
    assert "kitti_000003_10.png" in texts(at.subheader)
    assert at.dataframe and examples.CREDIT in texts(at.caption)


def test_about_page_credits_the_examples(space):
    at = page("about").run()
    no_exception(at)
    assert examples.CREDIT in texts(at.caption) and "16 labelled KITTI scenes" in texts(at.markdown)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["explorer", "analysis"])
def test_space_val_pages_score_the_examples_as_a_small_set(space, name):
    at = page(name).run()
    no_exception(at)
    assert examples.SMALL_SET in texts(at.info) and examples.CREDIT in texts(at.caption)
    frames = [d.value for d in at.dataframe]
    assert frames and any(len(f) for f in frames)
    shown = texts(at.caption) + "\n" + texts(at.markdown)
    assert str(ROOT) not in shown  # a public app names no server path
    if name == "analysis":
        assert "16 images" in texts(at.caption)
        assert "over the KITTI example scenes (16 images)" in shown
        assert "half of these images" not in shown  # the ensemble's weights were chosen on Cityscapes val


@pytest.mark.slow
def test_space_gradio_app_shows_the_examples_with_their_credit(space, monkeypatch, tmp_path):
    """``python gradio_app.py`` on a Space: the module-level demo's gallery is the KITTI scenes."""
    import importlib
    import sys

    monkeypatch.setenv("SEG_EXAMPLES_CACHE", str(tmp_path / "crops"))
    app = importlib.reload(sys.modules["gradio_app"]) if "gradio_app" in sys.modules else importlib.import_module("gradio_app")
    # (tests/test_gradio_app.py's fixture reloads the module with its own settings)
    assert settings.is_examples(app.DATA_DIR)
    props = [c["props"] for c in app.demo.config["components"]]
    credit = [p for p in props if p.get("elem_id") == "examples-credit"]
    assert credit and credit[0]["value"] == examples.CREDIT
    assert any(p.get("label") == "KITTI example scenes (click one)" for p in props)
    assert not [p for p in props if p.get("elem_id") == "no-examples"]


@pytest.mark.slow
def test_space_benchmark_recomputes_on_the_examples_and_says_so(space):
    at = page("benchmark").run()
    no_exception(at)
    assert "16 KITTI example scenes" in texts(at.markdown)
    at.button(key="bench_recompute").click().run()
    no_exception(at)
    assert examples.SMALL_SET in texts(at.info) and "on the KITTI example scenes" in texts(at.caption)
    assert any(len(d.value) for d in at.dataframe)
