"""Your own models in the Gradio app: the "Add your model" handlers called directly (file, path,
hf://, two at most, refusals in the page's error box, public mode's list), on the tiny
random-weight checkpoints of ``weights_dir``; the Hub is replaced at ``snapshot_download``.
"""

from __future__ import annotations

import re
import shutil

import gradio as gr
import numpy as np
import pytest

from seg_core import extra_models
from seg_core.palette import colorize
from seg_core.serve.slots import SLOTS
from gradio_tabs import api as api_tab, common as common_tab, own_models as own_tab, photo as photo_tab, video as video_tab, webcam as webcam_tab  # noqa: E402,F401
from tests.test_app_own_models import refusals
from tests.test_gradio_app import app, photo  # noqa: F401


def page_fn(demo, name: str):
    """The page's handler ``name``, checked to answer as many values as its event has outputs."""
    block = next(f for f in demo.fns.values() if f.fn.__name__ == name)

    def call(*args):
        out = block.fn(*args)
        assert len(out) == len(block.outputs), (name, len(out), len(block.outputs))
        return out
    return call


def props_by_id(demo) -> dict:
    return {c["props"].get("elem_id"): c for c in demo.config["components"] if c["props"].get("elem_id")}


def test_own_models_from_a_file_a_path_and_the_hub_beside_the_three(app, weights_dir, hub, photo, tmp_path):  # noqa: F811 (fixtures of test_gradio_app)
    upload = tmp_path / "mine.safetensors"
    shutil.copy(weights_dir / "unet.safetensors", upload)
    own = own_tab.add_own_model([], {"path": str(upload)})
    assert [o["label"] for o in own] == ["U-Net (mine.safetensors)"]
    own = own_tab.add_own_model(own, None, "hf://lab/unet-ft@abc123")
    with pytest.raises(gr.Error, match="at most 2 of your own models"):
        own_tab.add_own_model(own, None, str(weights_dir / "fcn_vgg16.safetensors"))

    state = photo_tab.compare(app.predictor, {"path": str(photo)}, "none", own_tab.own_models(own))
    alone = photo_tab.compare(app.predictor, {"path": str(photo)})
    labels = ["U-Net (mine.safetensors)", "U-Net (hf://lab/unet-ft@abc123)"]
    assert list(state["masks"])[-2:] == labels and state["own"] == labels
    assert np.array_equal(state["masks"]["ensemble"], alone["masks"]["ensemble"])  # not inside the ensemble
    assert state["backends"][labels[0]] == "PyTorch fp32, your model"
    names = tuple(app.predictor.models)
    *_, first, second = photo_tab.compare_views(state, 1.0, names, 2)
    assert first["visible"] and first["label"] == labels[0]
    assert np.array_equal(first["value"], colorize(state["masks"][labels[0]]))
    assert second["label"] == labels[1]
    assert not photo_tab.compare_views(alone, 1.0, names, 2)[-1]["visible"]  # no own model: the slot stays hidden
    assert "U&#8209;Net (mine.safetensors)" in photo_tab.compare_views(state, 1.0, names, 2)[0]  # and in the legend


def test_adding_in_the_page_segments_the_photo_again_and_unticking_removes(app, weights_dir, photo):  # noqa: F811 (fixtures of test_gradio_app)
    on_add, on_untick = page_fn(app.demo, "on_add"), page_fn(app.demo, "on_untick")
    out = on_add([], {"path": str(photo)}, "unet", 0.5, False, None, str(weights_dir / "fcn_vgg16.safetensors"))
    mine, listed, file, text, _, state, *views, box = out
    assert [o["label"] for o in mine] == ["FCN-VGG16 (fcn_vgg16.safetensors)"] and listed["visible"]
    assert listed["choices"] == ["FCN-VGG16 (fcn_vgg16.safetensors)"] and file is None and text is None  # emptied
    assert state["own"] == ["FCN-VGG16 (fcn_vgg16.safetensors)"] and views[-2]["visible"] and box["visible"] is False
    mine, listed, _, _, _, state, *views, _ = on_untick(mine, [], {"path": str(photo)}, "unet", 0.5, False)
    assert mine == [] and not listed["visible"] and state["own"] == [] and not views[-2]["visible"]


def test_every_refusal_is_the_pages_error(app, weights_dir, hub, tmp_path, monkeypatch):  # noqa: F811 (fixtures of test_gradio_app)
    on_add = page_fn(app.demo, "on_add")
    for how, what, sentence in refusals(weights_dir, tmp_path):
        with monkeypatch.context() as m:
            if how == "upload":
                name, data = what
                (tmp_path / name).write_bytes(data)
                upload, source = {"path": str(tmp_path / name)}, None
                if name == "big.safetensors":
                    m.setattr(extra_models, "MAX_BYTES", 2**20)
            else:
                upload, source = None, what
            out = on_add([], None, "unet", 0.5, False, upload, source)
        box = out[-1]
        assert box["visible"] and box["value"].startswith("**Cannot add this model:** "), what
        assert re.search(sentence, box["value"]) and str(tmp_path) not in box["value"], box["value"]
        assert all(isinstance(o, dict) and o.get("__type__") == "update" for o in out[:-1])  # nothing else changed


def test_public_mode_offers_only_the_listed_models(app, weights_dir, hub, monkeypatch):  # noqa: F811 (fixtures of test_gradio_app)
    monkeypatch.setenv("SEG_PUBLIC", "1")
    monkeypatch.setenv("SEG_EXTRA_MODELS", f"{weights_dir / 'fcn_resnet50.safetensors'},hf://lab/unet-ft")
    demo = app.build_demo(app.predictor, data_dir=None)
    props = props_by_id(demo)
    assert props["own-models"]["props"]["visible"] and "own-file" not in props and "own-source" not in props
    assert not props["own-none"]["props"]["visible"]
    assert [c[0] for c in props["own-pick"]["props"]["choices"]] == ["fcn_resnet50.safetensors", "hf://lab/unet-ft"]
    assert str(weights_dir) not in str(demo.config)
    own = own_tab.add_own_model([], None, "fcn_resnet50.safetensors")
    assert [o["label"] for o in own] == ["FCN-ResNet50 (fcn_resnet50.safetensors)"]
    with pytest.raises(gr.Error, match="is not offered here"):
        own_tab.add_own_model([], None, str(weights_dir / "unet.safetensors"))  # a path sent by hand

    monkeypatch.delenv("SEG_EXTRA_MODELS")
    props = props_by_id(app.build_demo(app.predictor, data_dir=None))
    assert not props["own-models"]["props"]["visible"]
    assert props["own-none"]["props"]["visible"]  # the tab says why it is empty


def test_own_models_wait_for_an_inference_slot_like_the_three(app, weights_dir, photo):  # noqa: F811 (fixtures of test_gradio_app)
    import threading

    from seg_core.predictor import Predictor

    mine = extra_models.load_extra_model(str(weights_dir / "unet.safetensors"), public=False)
    done = []
    SLOTS.acquire()  # the cores are busy with another forward pass
    try:
        worker = threading.Thread(target=lambda: done.append(photo_tab.compare(Predictor(), str(photo), extras=[mine])))
        worker.start()
        worker.join(1.0)
        assert not done  # it waits for the slot instead of running beside the other pass
    finally:
        SLOTS.release()
    worker.join(60)
    assert done and mine.label in done[0]["masks"]
