"""The Video tab and ``/segment_video``: a clip through the models, side by side, with its flicker.

Video jobs wait in the server's video line (``seg_core.serve.jobs``), behind the photos; gradio's
own queue for them (``concurrency_id="video"``, limit 1) shows the position.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import gradio as gr

from seg_core.predictor import Predictor
from seg_core.registry import display_name

from .common import FIT_GALLERY, MAX_FILE_MB, model_key, user_error

VIDEO_MAX_AGE_S = 3600  # result folders of /segment_video and the video tab; gradio copies what it returns


def _video_path(value) -> Path:
    """The local path of a video payload (gradio file dict, ``{"video": ...}``, path), or a ``gr.Error``."""
    if isinstance(value, dict):
        value = value.get("video", value)
        value = value.get("path") if isinstance(value, dict) else value
    elif hasattr(value, "path"):
        value = value.path
    if not value:
        raise user_error("No video: upload a clip (mp4, mov, mkv, webm, avi) first.", title="No video")
    return Path(value)


def _job_dir(root: Path) -> Path:
    """A fresh folder for one video's outputs; folders older than ``VIDEO_MAX_AGE_S`` are removed."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        try:
            if now - old.stat().st_mtime > VIDEO_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    out = root / uuid.uuid4().hex
    out.mkdir()
    return out


def _segment_video(predictor: Predictor, video, models: str | None, every, out_root: str | Path, progress=None):
    """Segment a clip into a fresh folder under ``out_root``: (mp4 path, CSV path, summary, ``VideoResult``)."""
    from seg_core.serve.jobs import run_video
    from seg_core.video import VideoError

    names = tuple(model_key(predictor, m) for m in str(models or "").replace(",", " ").split()) or None
    try:
        every = 1 if every in (None, "") else int(every)
    except (TypeError, ValueError):
        raise user_error(f"every must be a whole number, not {every!r}.", title="Bad value") from None
    if not 1 <= every <= 30:
        raise user_error("every must be between 1 and 30.", title="Bad value")
    source = _video_path(video)
    out = _job_dir(Path(out_root))
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in source.stem)[:60] or "video"
    video_path, csv_path = out / f"{stem}_compare.mp4", out / f"{stem}_frames.csv"
    try:
        result = run_video(source, video_path, predictor, names=names, every=every, out_csv=csv_path,
                           progress=progress)
    except VideoError as err:
        raise user_error(f"Cannot segment this video: {err}.", title="Bad video") from None
    summary = {"frames": result.frames, "segmented": result.segmented, "seconds": round(result.seconds, 3),
               "frames_per_s": round(result.fps, 2), "source_fps": float(result.info.fps),
               "size": [result.info.height, result.info.width], "models": list(result.names),
               "disagreement": result.mean("disagreement"),
               "flicker": {n: result.mean(f"flicker_{n}") for n in result.names},
               "flicker_motion_compensated": {n: result.mean(f"flicker_flow_{n}") for n in result.names},
               "summary": result.summary()}
    return str(video_path), str(csv_path), summary, result


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def describe_clip(value) -> str:
    """One line on an uploaded clip (size, rate, length, codec), or why it cannot be used."""
    from seg_core.video import Limits, VideoError, probe

    path = _video_path(value)
    name = (value.get("orig_name") if isinstance(value, dict) else None) or path.name
    try:
        info = probe(path, Limits(max_bytes=MAX_FILE_MB * 2**20))
    except VideoError as err:
        return f"**Cannot use {name}:** {err}."
    return (f"**{name}**: {info.width}x{info.height}, {float(info.fps):.3g} frames/s, {info.frames} frames "
            f"({info.seconds:.1f} s), {info.codec}. The comparison plays in the browser (H.264).")


def example_clip() -> tuple[str, str]:
    """The clip box's value and line for the example clip (``seg_core.examples.example_clip``, made
    once per server): a Space has no clip of its own to show."""
    from seg_core import examples

    path = examples.example_clip()
    return str(path), f"{describe_clip(str(path))} {examples.CLIP_NOTE}"


def video_section(predictor: Predictor, out_root: Path) -> None:
    """The Video tab's contents and the ``/segment_video`` API, inside the page's ``Blocks``.

    Video jobs have their own slot (``concurrency_id="video"``, limit 1): one at a time, the others
    wait in gradio's queue (their position is shown), and photos keep their own slot meanwhile."""
    from seg_core.video import Limits

    limits = Limits(max_bytes=MAX_FILE_MB * 2**20)  # gradio refuses larger uploads first
    gr.Markdown(f"Upload a clip ({limits.describe()}). Each frame goes "
                "through every model; the result shows the photo and each model's overlay side by side, with "
                "each model's flicker (pixels whose class changes from one segmented frame to the next).")
    with gr.Row():
        with gr.Column(scale=1):
            # A file box, not a player: a browser cannot play many valid clips (mp4v, AVI) and
            # gradio's player then pops "Video not playable" although the clip segments fine. What
            # is played is the comparison, always H.264.
            clip = gr.File(label="Clip (mp4, mov, mkv, webm, avi)", file_types=list(VIDEO_SUFFIXES),
                           elem_id="video-clip")
            clip_info = gr.Markdown(elem_id="video-clip-info")
            sample = gr.Button("Try the example clip", size="sm", elem_id="video-example")
            every = gr.Slider(1, 30, value=1, step=1, label="Segment every Nth frame (the mask is held in between)")
            run = gr.Button("Segment the video", variant="primary")
        with gr.Column(scale=2):
            # No label box: it sat on the legend drawn into the top of the video.
            result_video = gr.Video(label="Comparison", show_label=False, interactive=False)
            summary = gr.Markdown()
    # Hidden until a clip is segmented: empty, these boxes were a ~1,100 px wall below the form.
    with gr.Column(visible=False) as results:
        plot = gr.Plot(label="Disagreement and flicker over time")
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame (its panels below)", interactive=True)
        # Whole panels ("contain"): cropped to the thumbnails' squares, the names drawn into them were cut.
        panels = gr.Gallery(label="Panels of this frame", columns=4, height="auto", object_fit="contain", elem_classes=[FIT_GALLERY])
        files = gr.File(label="Downloads: comparison video and per-frame CSV", file_count="multiple")
    job = gr.State(None)

    def on_run(value, n, progress=gr.Progress()):
        from ui.figures import flicker_figure

        def tick(done, total):
            progress(done / total, desc=f"frame {done} of {total}")

        video_path, csv_path, info, result = _segment_video(predictor, value, None, n, out_root, tick)
        state = {"video": video_path, "frames": result.frames, "size": info["size"], "models": info["models"]}
        return (video_path, info["summary"], flicker_figure(result.rows, result.names),
                gr.Slider(0, max(1, result.frames - 1), value=0), [video_path, csv_path], state,
                gr.Column(visible=True))

    def on_frame(state, index):
        from seg_core.video import read_frame
        from seg_core.video_compare import Composer  # with OpenCV and PyAV: imported by the first clip, not at start

        if not state:
            return []
        names = [display_name(n) for n in state["models"]]
        # The comparison video is the grid itself: cut its frame back into the panels.
        composer = Composer(*state["size"], names)
        picture = read_frame(state["video"], min(int(index), state["frames"] - 1))
        return [(p, t) for t, p in composer.panels(picture).items()]

    clip.upload(describe_clip, clip, clip_info, preprocess=False, api_visibility="private")
    sample.click(example_clip, None, [clip, clip_info], api_visibility="private")
    clip.clear(lambda: "", None, clip_info, api_visibility="private")
    run.click(on_run, [clip, every], [result_video, summary, plot, frame, files, job, results], preprocess=False,
              concurrency_limit=1, concurrency_id="video", api_visibility="private")
    frame.release(on_frame, [job, frame], panels, api_visibility="private")
    result_video.change(on_frame, [job, frame], panels, api_visibility="private")

    with gr.Column(visible=False):
        api_video = gr.File(label="video")
        api_models = gr.Textbox(label="models", value="")
        api_every = gr.Number(label="every", value=1, precision=0)
        api_out_video = gr.File(label="comparison video (mp4)")
        api_out_csv = gr.File(label="per-frame statistics (csv)")
        api_summary = gr.JSON(label="summary")
        api_button = gr.Button("segment_video")

    def segment_video_api(video, models, every):
        """Segment a video clip with every model (or those named) and compare them.

        Args:
            video: the clip (mp4, mov, mkv, webm, avi; at most 10 MB, 60 s, 1500 frames, 1080p).
            models: model names separated by commas or spaces (unet, fcn_vgg16, fcn_resnet50); empty for all.
            every: segment every Nth frame and hold the mask between (1..30).

        Returns:
            The side-by-side comparison (H.264 mp4 at the source frame rate), the per-frame CSV
            (time, class shares, disagreement, flicker), and a summary of the whole clip.
        """
        return _segment_video(predictor, video, models, every, out_root)[:3]

    api_button.click(segment_video_api, [api_video, api_models, api_every], [api_out_video, api_out_csv, api_summary],
                     api_name="segment_video", preprocess=False, concurrency_limit=1, concurrency_id="video")
