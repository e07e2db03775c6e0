"""Video page: a clip through the three models, as a side-by-side video, a flicker chart and any frame.

Upload a clip; it waits for the server's one video slot (its position is shown), then each frame
goes through the models. Play the comparison, see each model's flicker and the disagreement over
time (click a point to jump to its frame), scrub to any frame, open it in Compare, download the
video and the per-frame CSV.
"""

from __future__ import annotations

import streamlit as st

from seg_core import examples
from seg_core.video import VideoError
from ui import common
from ui import video as ui_video
from ui import views
from ui.scenes import Scene

st.title("Compare the models on a video")
pred = common.predictor()
common.show_missing(pred)
if not pred.models:
    st.stop()

st.caption(f"Accepted: {', '.join(ui_video.UPLOAD_TYPES)}, {ui_video.LIMITS.describe()}. "
           "One video is segmented at a time on this server; others wait in line.")
upload = st.file_uploader("Drop a video clip here", type=list(ui_video.UPLOAD_TYPES), key="video_upload")
every = st.number_input("Segment every Nth frame (the mask is held in between)", min_value=1, max_value=30, value=1,
                        step=1, key="video_every")

job: ui_video.VideoJob | None = st.session_state.get(ui_video.JOB_KEY)
# The clip: an upload, else the example clip once asked for (it stays the clip until an upload).
if upload is not None:
    st.session_state.pop(ui_video.EXAMPLE_KEY, None)
elif st.button("Try the example clip", key="video_example_button", help=examples.CLIP_NOTE):
    st.session_state[ui_video.EXAMPLE_KEY] = True
source = (upload.name, upload.getvalue()) if upload is not None else \
    (examples.CLIP_NAME, examples.example_clip().read_bytes()) if st.session_state.get(ui_video.EXAMPLE_KEY) else None
if source is not None:
    name, data = source
    wanted = (ui_video.upload_key(data), int(every))
    if job is None or (job.key, job.every) != wanted:
        if job is not None:  # one job per session: the previous one's files go before the next is made
            st.session_state.pop(ui_video.JOB_KEY, None)
            job.folder.cleanup()
        job = None
        try:
            job = ui_video.run_job(name, data, pred, int(every), st.empty(), st.progress(0.0, text="Waiting…"))
            st.session_state[ui_video.JOB_KEY] = job
            st.session_state[ui_video.FRAME_KEY] = 0
        except VideoError as err:
            st.error(f"Cannot use **{name}**: {err}.")
if job is None:
    st.info("Upload a clip (a dashcam video works best), or try the example clip, to compare the models on it "
            "frame by frame.")
    st.stop()

st.subheader(job.name)
st.caption(job.summary + (f" {examples.CLIP_NOTE}" if job.name == examples.CLIP_NAME and upload is None else ""))
st.html(views.class_key_html(phone_only=True))  # the burnt-in legend cannot be read on a phone
st.video(str(job.video), format="video/mp4")

st.markdown("#### Disagreement and flicker over time")
st.caption("Flicker: the share of pixels whose class changed since the previous segmented frame; the "
           "motion-compensated line first moves the previous mask along the optical flow, so real motion does "
           "not count. Click a point to show its frame below.")
event = st.plotly_chart(ui_video.chart(job), key="video_chart", on_select="rerun", selection_mode="points")
picked = ui_video.frame_from_selection(event)
if picked is not None and st.session_state.get("_video_picked") != picked:
    st.session_state["_video_picked"] = picked
    st.session_state[ui_video.FRAME_KEY] = picked

last = len(job.rows) - 1
index = st.slider("Frame", 0, max(last, 1), key=ui_video.FRAME_KEY, disabled=last == 0,
                  help="The video player does not tell the app where it is: pick the frame here.")
index = min(index, last)
row = job.rows[index]
panels = ui_video.panels(str(job.video), job.key, index, job.composer)
common.show_images(list(panels.items()))
st.caption(f"Frame {index} at {row['time_s']:.2f} s" + ("" if row["segmented"] else " (mask held from an earlier frame)"))
if st.button("Open this frame in Compare", key="video_to_compare"):
    photo = ui_video.source_frame(str(job.source), job.key, index)
    common.set_scene(Scene(name=f"{job.stem} frame {index}", photo=photo))
    st.switch_page("app_pages/compare.py")

st.markdown("#### Downloads")
left, right = st.columns(2)
# Callables, read when clicked: bytes given here would be held in the session's media files at every rerun.
left.download_button("Comparison video (MP4)", job.video.read_bytes, f"{job.stem}_compare.mp4", "video/mp4",
                     key="video_dl_mp4", on_click="ignore")
right.download_button("Per-frame statistics (CSV)", job.csv.read_bytes, f"{job.stem}_frames.csv", "text/csv",
                      key="video_dl_csv", on_click="ignore")
