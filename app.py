"""The Streamlit app, the product's front door: ``streamlit run app.py``.

Declares the pages (``app_pages/``) and the sidebar settings they share. The folder is not called
``pages/``: Streamlit would then list its files as pages of their own and, on a fresh server, open a
deep link such as ``/about`` without this file's navigation. Models come from
``SEG_WEIGHTS_DIR`` (default ``weights/`` next to this file), val scenes from ``SEG_DATA_DIR``
(default ``../shared/data/cityscapes_pairs/val``) or the sidebar.
"""

import streamlit as st

from ui import common, views

if common.settings.public_mode():  # a visitor sees the sentence of an error, never a traceback with server paths
    st.set_option("client.showErrorDetails", "none")
# The pages as a bar at the top and the sidebar (settings) closed: the pictures get the whole
# width, so three masks fit a row at 1440 px, each over 400 px wide.
st.set_page_config(page_title="Cityscapes segmentation workbench", page_icon="🚦", layout="wide",
                   initial_sidebar_state="collapsed")
nav = st.navigation(position="top", pages=[
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:", default=True),
    st.Page("app_pages/ground_truth.py", title="Ground truth", icon=":material/fact_check:"),
    st.Page("app_pages/video.py", title="Video", icon=":material/movie:"),
    st.Page("app_pages/stress.py", title="Stress test", icon=":material/thunderstorm:"),
    st.Page("app_pages/benchmark.py", title="Benchmark", icon=":material/leaderboard:"),
    st.Page("app_pages/explorer.py", title="Val explorer", icon=":material/travel_explore:"),
    st.Page("app_pages/analysis.py", title="Is the difference real?", icon=":material/query_stats:"),
    st.Page("app_pages/about.py", title="About", icon=":material/info:"),
])
st.html(views.PAGE_CSS)
if preload := common.preload_html():  # our own constant script: code the first upload would fetch
    st.html(preload, unsafe_allow_javascript=True)
common.settings_sidebar()
nav.run()
