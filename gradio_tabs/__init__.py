"""The Gradio app's parts, one module per tab or part of the page, shaped like the Streamlit app's
``app_pages/``: ``photo`` (one photo compared: the page itself), ``own_models`` (add your model),
``video`` and ``webcam`` (their tabs), ``api`` (gradio's named endpoints and the plain HTTP API),
``common`` (what they share: limits, decoding a payload, model names, errors as sentences).

``gradio_app.py`` puts them together into ``demo``. Every forward pass goes through
``seg_core.serve``; the pictures and the legend come from ``seg_core.viz`` and ``ui.views``, which
the Streamlit app draws with too.
"""
