"""The Stress test's drawing, shared by the Streamlit page and the Gradio tab: labels of the
corruptions, the picture grid's items and the mIoU row of one ``seg_core.serve.stress.StressView``.
No Streamlit or Gradio here."""

from __future__ import annotations

from seg_core.corruptions import CORRUPTION_NAMES
from seg_core.registry import ARCH_NAMES, ENSEMBLE, display_name
from seg_core.serve.stress import StressView

#: Severity 0 on the slider: the photo as it is.
MAX_SEVERITY = 5


def corruption_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


CORRUPTION_CHOICES = {corruption_label(n): n for n in CORRUPTION_NAMES}


def order(view: StressView) -> list[str]:
    """The three models in their fixed order, then the ensemble (and any other entry)."""
    return [n for n in ARCH_NAMES if n in view.predictions] + [n for n in view.predictions if n not in ARCH_NAMES]


def caption(name: str, view: StressView) -> str:
    title = "Ensemble" if name == ENSEMBLE else display_name(name)
    return f"{title}: mIoU {view.miou[name]:.3f}" if name in view.miou else title


def miou_rows(view: StressView) -> list[dict]:
    """One row per model: this photo's mIoU against its ground truth (empty without one)."""
    return [{"model": "Ensemble" if n == ENSEMBLE else display_name(n), "mIoU on this photo": round(view.miou[n], 3)}
            for n in order(view) if n in view.miou]


def title(corruption: str, severity: int) -> str:
    return "the photo as it is" if severity == 0 else f"{corruption_label(corruption).lower()}, severity {severity}"
