"""Helpers of the Streamlit app: ``scenes`` and ``figures`` are pure, ``common`` holds the widgets."""
