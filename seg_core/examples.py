"""The credit the apps show beside the shipped example scenes (``examples/``, KITTI, CC BY-NC-SA 3.0).

One text for both apps and the About page, so the licence's attribution reads the same wherever a
KITTI scene is drawn. Where the scenes live and when they are used: ``seg_core.settings.data_dir``.
"""

from __future__ import annotations

KITTI_URL = "https://www.cvlibs.net/datasets/kitti/eval_semseg.php?benchmark=semantics2015"
LICENCE_URL = "https://creativecommons.org/licenses/by-nc-sa/3.0/"
#: Markdown; both Streamlit and Gradio render it.
CREDIT = (f"Example scenes: frames of the [KITTI semantic segmentation benchmark]({KITTI_URL}) "
          f"(Geiger, Alhaija et al.), [CC BY-NC-SA 3.0]({LICENCE_URL}); cropped to 2:1 and resized "
          "to 256x256, void and blended border pixels set to ignore (`examples/ATTRIBUTION.md`).")
#: Said wherever a score over the whole set is shown: 16 scenes of another city and camera.
SMALL_SET = ("These are the 16 KITTI example scenes shipped with the app, not Cityscapes val: a small set "
             "from another city and camera, so the figures are noisy and lower than on Cityscapes.")
