"""Your own models in the Streamlit app (``ui/extra.py``): added from an upload, a path or hf://,
shown in a column of their own on Compare and Ground truth, refused with one sentence, and in
public mode only the deployer's ``SEG_EXTRA_MODELS``.

Checkpoints are the random-weight 64x64 ones of the ``weights_dir`` fixture; the Hub is replaced
at ``huggingface_hub.snapshot_download``.
"""

from __future__ import annotations

import json
import re

import pytest

from seg_core import extra_models
from seg_core.checkpoint import CONFIG_KEY, read_tensors, save_tensors
from seg_core.extra_models import load_extra_model, predict_extra
from tests.test_app import grid_captions, grid_html, no_exception, page, page_text, run_page, texts
from seg_core.serve import photos
from ui import scenes, views

SCENE = "5.jpg"


@pytest.fixture
def compare(env, tmp_path, monkeypatch):
    """The Compare page on a val scene, uploads stored under a temp cache folder."""
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path / "cache"))
    at = page("compare")
    at.query_params["scene"] = SCENE
    at.run()
    no_exception(at)
    return at


def upload(at, name: str, data: bytes):
    uploader = next(u for u in at.get("file_uploader") if u.key.startswith("extra_upload_"))
    uploader.set_value((name, data, "application/octet-stream")).run()
    no_exception(at)
    return at


def add_source(at, source: str):
    at.text_input(key="extra_source").set_value(source)
    at.button(key="extra_add_source").click().run()
    no_exception(at)
    return at


def own_columns(at) -> list[str]:
    return [c.rsplit(" (", 1)[0] for c in grid_captions(at) if ".safetensors" in c or "hf://" in c]


def test_an_uploaded_checkpoint_gets_its_own_column_and_can_be_removed(compare, weights_dir, env, tmp_path):
    at = upload(compare, "mine.safetensors", (weights_dir / "unet.safetensors").read_bytes())
    assert not at.error
    labels = [c.rsplit(" (", 1)[0] for c in grid_captions(at)]
    assert labels[-2:] == ["All three (averaged)", "U-Net (mine.safetensors)"]  # beside the three, not in the ensemble
    # its column is its own mask, as predict_extra makes it
    stored = next((tmp_path / "cache" / "extra_models").rglob("mine.safetensors"))
    scene = scenes.scene_from_file(env / SCENE)
    mask = predict_extra([load_extra_model(str(stored), public=False)], scene.photo)["U-Net (mine.safetensors)"].mask
    assert views.mask_data_url(mask) in grid_html(at)
    assert "U-Net (mine.safetensors)" in [m.label for m in at.metric]
    assert "PyTorch fp32, your model" in texts(at.caption)
    assert not [u for u in at.get("file_uploader") if u.key.startswith("extra_upload_") and u.value]  # bytes let go

    remove = next(b for b in at.button if b.key.startswith("extra_remove_"))
    remove.click().run()
    no_exception(at)
    assert own_columns(at) == [] and at.session_state["extra_models"] == []


def test_a_path_and_a_hub_id_are_added_and_two_is_the_most(compare, weights_dir, hub):
    at = add_source(compare, str(weights_dir / "fcn_vgg16.safetensors"))
    assert at.text_input(key="extra_source").value == ""  # emptied for the next one
    at = add_source(at, "hf://lab/unet-ft@abc123")
    assert not at.error
    assert own_columns(at) == ["FCN-VGG16 (fcn_vgg16.safetensors)", "U-Net (hf://lab/unet-ft@abc123)"]
    assert str(weights_dir) not in grid_html(at)  # a file by its name, never its folder
    assert "At most 2 of your own models at a time" in texts(at.caption)
    assert not [t for t in at.text_input if t.key == "extra_source"]  # no controls while full
    # Ground truth shows them too (the same session), scored against the truth
    gt = page("ground_truth")
    gt.session_state["scene"] = at.session_state["scene"]
    gt.session_state["extra_models"] = at.session_state["extra_models"]
    gt.run()
    no_exception(gt)
    assert list(gt.dataframe[0].value["model"])[-2:] == ["FCN-VGG16 (fcn_vgg16.safetensors)",
                                                        "U-Net (hf://lab/unet-ft@abc123)"]


def refusals(weights_dir, tmp_path):
    """(how, what, the sentence shown) for each kind of refusal."""
    tensors, meta = read_tensors(weights_dir / "unet.safetensors")
    cfg = json.loads(meta[CONFIG_KEY])
    cfg["arch"] = "deeplabv3"
    save_tensors(tensors, tmp_path / "deeplab.safetensors", {**meta, CONFIG_KEY: json.dumps(cfg)})
    return [
        ("upload", ("model.pt", b"\x80\x04 a pickle"),
         re.escape("model.pt is not a .safetensors checkpoint (no pickle files are read)")),
        ("upload", ("broken.safetensors", (weights_dir / "unet.safetensors").read_bytes()[:1000]),
         "cannot use broken.safetensors: it is not a valid safetensors checkpoint"),
        ("upload", ("big.safetensors", (weights_dir / "unet.safetensors").read_bytes()),
         r"big.safetensors is \d+ MiB; the limit is 1 MiB"),
        ("path", str(tmp_path / "deeplab.safetensors"), re.escape("cannot use deeplab.safetensors: it has an invalid model config: unknown arch 'deeplabv3'")),
        ("path", str(tmp_path / "gone.safetensors"), "no checkpoint gone.safetensors"),
        ("path", "hf://lab/other", "could not download hf://lab/other: RepositoryNotFoundError"),
        ("path", "hf://lab/offline@v1", "could not download hf://lab/offline@v1: LocalEntryNotFoundError"),
    ]


def test_every_refusal_shows_its_sentence_not_a_traceback(compare, weights_dir, tmp_path, hub, monkeypatch):
    at = compare
    for how, what, sentence in refusals(weights_dir, tmp_path):
        with monkeypatch.context() as m:
            if how == "upload" and what[0] == "big.safetensors":
                m.setattr(extra_models, "MAX_BYTES", 2**20)
            at = upload(at, *what) if how == "upload" else add_source(at, what)
        assert len(at.error) == 1 and re.search(sentence, at.error[0].value), (what, texts(at.error))
        assert at.error[0].value.startswith("Cannot add this model: ") and str(tmp_path) not in at.error[0].value
        assert own_columns(at) == []
    assert not list((tmp_path / "cache").rglob("model.pt")) and not list((tmp_path / "cache").rglob("big.*"))


def test_public_mode_offers_only_the_listed_models(env, weights_dir, hub, tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_PUBLIC", "1")
    monkeypatch.setenv("SEG_EXTRA_MODELS", f"{weights_dir / 'fcn_resnet50.safetensors'},hf://lab/unet-ft")
    at = page("compare")
    at.query_params["scene"] = SCENE
    at.run()
    no_exception(at)
    assert [e for e in at.expander if e.label.startswith("Your own models")]
    assert not [u for u in at.get("file_uploader") if u.key.startswith("extra_")]
    assert not [t for t in at.text_input if t.key == "extra_source"]
    pick = at.selectbox(key="extra_pick")
    assert pick.options == ["fcn_resnet50.safetensors", "hf://lab/unet-ft"]
    pick.set_value("fcn_resnet50.safetensors").run()
    at.button(key="extra_add_listed").click().run()
    no_exception(at)
    assert own_columns(at) == ["FCN-ResNet50 (fcn_resnet50.safetensors)"]
    assert str(weights_dir) not in page_text(at)

    monkeypatch.delenv("SEG_EXTRA_MODELS")
    at = run_page("compare", scenes.scene_from_file(env / SCENE))
    assert not [e for e in at.expander if e.label.startswith("Your own models")]
    assert not at.get("selectbox") or not [s for s in at.selectbox if s.key == "extra_pick"]


def test_the_ensembles_cell_keeps_its_place_while_it_is_averaged(compare, weights_dir, monkeypatch):
    at = add_source(compare, str(weights_dir / "fcn_vgg16.safetensors"))
    drawn, original = [], views.image_grid_html

    def grid(items, *args, notes=None, **options):
        drawn.append(([c.split(" (")[0] for c, _ in items], bool(notes)))
        return original(items, *args, notes=notes, **options)

    monkeypatch.setattr(views, "image_grid_html", grid)
    photos.CACHE.clear()  # the server's results are shared by all sessions: none from other tests
    at.query_params["scene"] = "2.jpg"  # a scene whose ensemble the server has not mixed yet
    at.run()
    no_exception(at)
    order = ["Photo", "Ground truth", "U-Net", "FCN-VGG16", "FCN-ResNet50", "All three", "FCN-VGG16"]
    assert drawn == [(order, True), (order, False)]  # "averaging…" first, then the ensemble, in the same cell
