"""Tabs of the Gradio app (``gradio_app.py``), one module per tab."""
