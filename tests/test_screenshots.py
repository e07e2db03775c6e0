"""``benchmarks/screenshots.py``: it knows every page and tab the apps have, and it writes a
full-page JPEG of a page at a phone's width (one page, one width: the docs' set takes minutes)."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from benchmarks import screenshots
from benchmarks.browser import CHROMIUM, NO_CHROMIUM
from tests.conftest import ROOT


def test_every_streamlit_page_and_gradio_tab_is_shot():
    pages = re.findall(r'st\.Page\("app_pages/(\w+)\.py"', (ROOT / "app.py").read_text())
    assert pages and set(pages) == set(screenshots.STREAMLIT_PAGES)
    sources = (ROOT / "gradio_app.py").read_text() + (ROOT / "gradio_tabs" / "photo.py").read_text()
    tabs = re.findall(r'gr\.Tab\("([^"]+)"', sources)
    assert tabs and set(tabs) == set(screenshots.GRADIO_TABS.values())


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_one_page_at_a_phones_width(tmp_path, capsys):
    screenshots.main(["--apps", "streamlit", "--pages", "about", "--widths", "390", "--out", str(tmp_path)])
    shots = sorted(tmp_path.iterdir())
    assert [p.name for p in shots] == ["streamlit_about_390.jpg"]
    with Image.open(shots[0]) as im:
        height, cap = screenshots.SIZES[390]
        assert im.format == "JPEG" and im.width == 390
        assert height < im.height <= cap  # the whole page (About is long), not one screen
        top = im.convert("L").crop((0, 0, 390, 400))
        assert top.getextrema()[0] < 100  # the title's dark text is drawn, not a blank page
    assert "1 screenshot, " in capsys.readouterr().out
