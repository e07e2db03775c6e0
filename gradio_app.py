"""The Gradio front end: U-Net, FCN-VGG16 and FCN-ResNet50 side by side on a photo, plus an HTTP API.

``python gradio_app.py`` serves it on http://127.0.0.1:7860 (``GRADIO_SERVER_NAME`` / ``_PORT``) with
uvicorn, the page and gradio's API at ``/`` and a plain HTTP API beside them
(``gradio_tabs.api.rest_api``); on a Hugging Face Space (``sdk: gradio``, ``app_file:
gradio_app.py``) the same file is the entry point. It only puts the parts of ``gradio_tabs/``
together (one module per tab, as the Streamlit app's ``app_pages/``); they ask ``seg_core.serve``
for every model call and draw with ``seg_core.viz`` and ``ui.views``, as the Streamlit app does; no
model code lives here.

Configuration (environment variables, read at import; defaults in ``seg_core.settings``):

- ``SEG_WEIGHTS_REPO`` (+ ``SEG_WEIGHTS_REVISION``): a Hub model repo (and commit) the weights are
  downloaded from at start-up (``seg_core.served_weights.weights_dir``); unset or offline, ``SEG_WEIGHTS_DIR``.
- ``SEG_WEIGHTS_DIR``: folder with ``unet.safetensors``, ``fcn_vgg16.safetensors`` and
  ``fcn_resnet50.safetensors`` (default ``weights/`` next to this file), and their int8 OpenVINO
  exports (``<name>.int8.xml`` + ``.bin``), which are used instead when they match the checkpoint
  (``SEG_BACKEND=pytorch`` forces PyTorch). The models are loaded once, at import. A missing or
  broken checkpoint is reported in the page, with the command that trains it, and the other
  models work.
- ``SEG_DATA_DIR``: a folder of labelled pairs (photo on the left half) for the examples gallery
  (default ``../shared/data/cityscapes_pairs/val`` next to the repo if present, else the 16 KITTI
  scenes of ``examples/``, credited under the gallery: ``settings.data_dir``). The photo halves of
  the first ``N_EXAMPLES`` are cropped once into ``SEG_EXAMPLES_CACHE`` (default
  ``<tmp>/seg_gradio_examples``, outside the repo: Cityscapes pairs are not ours to redistribute).
  Without the folder the page has no examples and says how to set it.

Limits, sized for a free Space (2 vCPU, 16 GB RAM):

- ``SEG_INFER_WORKERS`` / ``SEG_INFER_THREADS``: inferences at once (default 1) and CPU threads of
  each (default all), to fit the workers to the machine's cores.
- ``demo.queue(default_concurrency_limit=2, max_size=20)``: at most 20 requests wait in the queue;
  more are turned away with "queue full" rather than piling up. The page's segmentation and the
  ``/segment`` API share one slot (``concurrency_id="inference"``, limit 1), so one forward pass
  runs at a time with both cores; redrawing overlays (opacity, model picker) is cheap and may run
  beside it (``trigger_mode="always_last"``: a dragged slider queues one redraw, not dozens).
- ``launch(max_file_size="10mb")`` (``LAUNCH_KWARGS``): gradio refuses larger uploads before they
  reach us; ``seg_core.inference.load_image`` refuses images over 40 megapixels and anything that
  is not a decodable image with an ``ImageError``, shown as a ``gr.Error`` (never a traceback).
- Pictures in the page are downscaled to ``DISPLAY_MAX_SIDE`` on their long side, for display
  only: the models see the image as ``seg_core.inference`` prepares it, and the API returns the
  mask at the image's own size.

API (``api_name="segment"``)::

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")          # or "org/space-name" for a Space
    png_path, shares = client.predict(handle_file("street.jpg"), "unet", api_name="/segment")

``/segment_inline`` takes the same arguments and answers ``{"mask_png_base64": ..., "shares": ...}``:
the same PNG inside the answer, so no file is written, cached and fetched for it.

The plain HTTP API answers the same in one request, with no upload step, queue event or event
stream (about a third less server CPU per request; see docs/serving.md, "The Gradio app under load")::

    curl --data-binary @street.jpg "http://127.0.0.1:7860/v1/segment?model=unet"
    # {"mask_png_base64": ..., "shares": {...}}; 400/413 {"error": sentence}; 503 + Retry-After when full

``png_path`` is a local copy of a single-channel PNG at the image's size whose pixel values are
train ids (0..18, an index into ``seg_core.palette.CLASS_NAMES``); ``shares`` is
``{class name: fraction of pixels}`` for the classes present, largest first. The model is one of
``unet``, ``fcn_vgg16``, ``fcn_resnet50``. A bad image, an unknown model name or a model this
server lacks raises ``gradio_client.exceptions.AppError`` whose message says what is wrong.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seg_core import settings
from seg_core.predictor import Predictor
from seg_core.served_weights import WeightsError, weights_source


def load_predictor() -> tuple[Predictor, str | None, Path | None]:
    """The models of ``seg_core.served_weights.weights_dir()``, why the configured weights could not be
    used if so (a missing Hub repo or revision leaves the page up, with no model and the reason), and
    their folder (``None`` then), which the Stress test reads the benchmark's results from."""
    try:
        source = weights_source()
    except WeightsError as err:
        return Predictor(), str(err), None
    return (Predictor.from_dir(source.folder, threads=settings.infer_threads(), parallel=settings.infer_workers()),
            source.note, source.folder)


# Once, at import: every session shares these models. They load (OpenVINO compiles them) on one
# core while gradio is imported on the other, so the page answers sooner (docs/examples.md).
_pool = ThreadPoolExecutor(1, thread_name_prefix="load-models")
_loaded = _pool.submit(load_predictor)
_pool.shutdown(wait=False)

import gradio as gr  # noqa: E402 (after the models' loading has started)

from gradio_tabs import api, photo, video, webcam  # noqa: E402
from gradio_tabs.common import DEFAULT_CONCURRENCY, INFER_WORKERS, QUEUE_MAX_SIZE  # noqa: E402
from gradio_tabs.stress import stress_tab  # noqa: E402

DATA_DIR = settings.data_dir()
EXAMPLES_CACHE = settings.examples_cache()


def build_demo(predictor: Predictor, data_dir: str | Path | None = DATA_DIR,
               examples_cache: str | Path = EXAMPLES_CACHE, weights_note: str | None = None,
               weights_dir: str | Path | None = None, warm: bool = False) -> gr.Blocks:
    """The whole app around one ``Predictor``; ``demo = build_demo(...)`` below is what gets served.
    ``weights_note`` says why the configured weights were not used (shown at the top);
    ``weights_dir``: where the Stress test tab finds the corruption benchmark's results; ``warm``:
    segment the landing scene in the background now (the served app), not when a visitor comes."""
    masks_dir = Path(tempfile.gettempdir()) / "seg_gradio_masks"  # unique names; old ones pruned per call
    with gr.Blocks(title="Cityscapes segmentation: three models compared", delete_cache=(3600, 3600),
                   analytics_enabled=False) as demo:  # no usage reports to gradio's servers
        def between() -> None:  # after Compare and Inspect
            with gr.Tab("Video", id="video"):
                video.video_section(predictor, Path(tempfile.gettempdir()) / "seg_gradio_videos")
            with gr.Tab("Webcam", id="webcam"):
                webcam.webcam_section(predictor)

        def after() -> None:  # after Your model
            with gr.Tab("Stress test", id="stress") as stress:
                stress_tab(predictor, weights_dir, data_dir, INFER_WORKERS, tab=stress)

        landing, outputs, inspect = photo.page(predictor, data_dir, examples_cache, weights_note, masks_dir,
                                               between, after)
        if landing is not None:
            # The page opens on that scene's masks, computed once by the live models (while the server
            # starts, when served) and handed to each page load without running a model or queueing.
            demo.load(landing.outputs, None, outputs, queue=False, show_progress="hidden",
                      api_visibility="private").then(**inspect)
            if warm:
                landing.warm()
        elif warm and predictor.models:  # no landing scene: the first photo's masks and times are a warm server's
            import threading

            from seg_core.serve.photos import PhotoService

            threading.Thread(target=PhotoService.of(predictor).warm_up, name="warm-up", daemon=True).start()
        api.endpoints(predictor, masks_dir)  # the programmatic API: hidden components, documented endpoints
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    return demo


predictor, WEIGHTS_NOTE, WEIGHTS_DIR = _loaded.result()
# Served (``python gradio_app.py``, a Space): the landing scene is segmented while the server starts.
demo = build_demo(predictor, DATA_DIR, weights_note=WEIGHTS_NOTE, weights_dir=WEIGHTS_DIR, warm=__name__ == "__main__")

if __name__ == "__main__":
    import uvicorn

    from seg_core.safety import map_large_blocks

    map_large_blocks()  # RSS back near its start after a burst of large images (seg_core.safety)

    print(f"Serving on http://{settings.server_name()}:{settings.server_port()}/ (the page), "
          f"POST {api.REST_PATH} (plain HTTP API)", flush=True)
    uvicorn.run(api.http_app(demo, predictor), host=settings.server_name(), port=settings.server_port(),
                log_level="warning")
