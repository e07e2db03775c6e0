"""The serving layer both apps draw from: one photo compared, who runs when, and the video line.

A package rather than one module because its three jobs have different lifetimes and readers:
``photos`` (one photo through the models, once per model, its probabilities kept in a bounded
cache for the ensemble and Inspect), ``slots`` (the inference slots and the photos-first rule that
every forward pass of a photo goes through), ``jobs`` (one video job at a time per server) and
``stress`` (one photo under one corruption, for the Stress test).
No Streamlit or Gradio here: a page or a tab only draws what these return.
"""
