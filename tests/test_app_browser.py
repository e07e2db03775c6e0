"""End to end: ``streamlit run app.py`` on a free local port, loaded in headless Chromium.

The harness (Chromium over DevTools, the Streamlit server) is ``benchmarks.browser``, shared with
the page benchmarks; these tests skip, saying why, when Debian's ``chromium`` is missing.
"""

from __future__ import annotations

import pytest
from PIL import Image

from benchmarks.browser import (CHROMIUM, MODEL_TITLES, NO_CHROMIUM, SETTLED_JS, Browser, capture_compare, model_images,
                                serve_app, wait_for)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]

#: Each Compare picture's title and the top of its box, in page pixels.
CELL_TOPS_JS = "[...document.querySelectorAll('.seg-grid img')].map(i => [i.alt, Math.round(i.getBoundingClientRect().top + scrollY)])"


def test_compare_page_renders_three_models_in_chromium(weights_dir, pairs_dir, tmp_path):
    shot = tmp_path / "compare.png"
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        text, images = capture_compare(url, shot, "2.jpg")
    for title in MODEL_TITLES:
        assert f"{title} (" in text and " ms)" in text  # the mask caption with its inference time
    assert "Ground truth" in text and "Inference time and downloads" in text
    assert len(images) == 3, images
    assert shot.stat().st_size > 20_000
    with Image.open(shot) as im:
        assert im.size[0] == 1400


def test_picked_scene_masks_are_in_the_first_viewport(weights_dir, pairs_dir, tmp_path):
    """Landing page at 1440x1000: click a thumbnail; the gallery folds away, the URL names the scene,
    and the result comes first: the pictures over 400 px wide, the photo and the first mask within
    the first screen, without scrolling (a square scene's second row starts in it too; a 2:1 photo's
    fits). At 390 px wide: one picture a row, the first mask in the first screen (the ground truth
    after the models), and all the legend's columns fit the screen."""
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(width=1440, height=1000)
        try:
            browser.call("Page.navigate", url=url)
            click = ("(() => { const b = [...document.querySelectorAll('[data-testid=\"stButton\"] button')]"
                     ".find(e => e.innerText.trim() === '3.jpg'); if (b) b.click(); return !!b; })()")
            wait_for(lambda: browser.evaluate(click), 120, "the example scenes")
            wait_for(lambda: len(model_images(browser)) >= 3, 120, "the three model masks")
            wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
            images = model_images(browser)
            assert browser.evaluate("scrollY") == 0
            assert min(i["bottom"] for i in images) <= 1000 and min(i["top"] for i in images) < 1000 - 200, images
            widths = browser.evaluate("[...document.querySelectorAll('.seg-grid img')].map(i => i.width)")
            assert min(widths) >= 400, widths
            # three a row: the photo, the ground truth and U-Net, then the two FCNs and the ensemble
            rows = {}
            for alt, top in browser.evaluate(CELL_TOPS_JS):
                rows.setdefault(top, []).append(alt.split(" (")[0])
            assert sorted(map(len, rows.values())) == [3, 3] and any("All three" in r for r in rows.values()), rows
            assert browser.evaluate("location.search") == "?scene=3.jpg"
            assert "showing 3.jpg" in browser.text()
            assert browser.evaluate("document.querySelectorAll('[data-testid=\"stExpanderDetails\"] img').length") == 0
            browser.screenshot(tmp_path / "picked.png")
        finally:
            browser.close()
        browser = Browser(width=390, height=844)
        try:
            browser.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1, mobile=True)
            browser.call("Page.navigate", url=f"{url}/?scene=3.jpg")
            wait_for(lambda: len(model_images(browser)) >= 3, 120, "the three model masks")
            wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
            first_mask = min(i["top"] for i in model_images(browser))
            assert first_mask < 844 - 100, first_mask  # at least its top 100 px in the first screen
            # all four share columns (the ensemble's last) inside the screen, nothing to scroll to
            edges = browser.evaluate("(() => { const t = [...document.querySelectorAll('table')].find(t => t.innerText.includes('class'));"
                                     " return [...t.querySelectorAll('th')].map(h => h.getBoundingClientRect().right)"
                                     ".concat([t.parentElement.scrollWidth - t.parentElement.clientWidth]); })()")
            *rights, overflow = edges
            assert len(rights) == 5 and max(rights) <= 390 and overflow <= 0, edges
            widths = [w for w in browser.evaluate("[...document.querySelectorAll('.seg-grid img')].map(i => i.width)")]
            assert min(widths) > 300  # one picture a row on a phone, each as wide as the screen
            tops = dict(browser.evaluate(CELL_TOPS_JS))  # the ground truth after the models, the ensemble too
            assert tops["Ground truth"] > max(t for alt, t in tops.items() if alt != "Ground truth"), tops
        finally:
            browser.close()


#: The page's fetches of Streamlit's own code, with their start (ms, the page's clock).
CODE_FETCHES_JS = "performance.getEntriesByType('resource').filter(e => e.name.includes('/static/js/')).map(e => [e.name.split('/').pop(), e.startTime])"


def test_the_first_upload_fetches_no_code(weights_dir, pairs_dir, tmp_path):
    """Streamlit's frontend fetched parts of itself on a fresh page's first upload: its HTTP client
    before the file could be sent, then the view buttons, metrics and download buttons (a round trip
    each over a real network). ``app.py`` now has them fetched once the landing page is idle: they
    are loaded before anything is uploaded, nothing of Streamlit's code is fetched from the drop to
    the settled result, and the element that loads them takes no room on the page."""
    from benchmarks.bench_page import STREAMLIT_INPUT, Page, open_compare
    from benchmarks.scenes import jpeg, synthetic_street
    from ui.common import LAZY_CHUNKS

    photo = tmp_path / "street.jpg"
    photo.write_bytes(jpeg(synthetic_street(640, 320, seed=5)))
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Page(1440, 1000)
        try:
            open_compare(browser, url)  # the landing page, settled, as a visitor sees it before a drop
            loaded = lambda: {name.split(".")[0] for name, _ in browser.evaluate(CODE_FETCHES_JS)}  # noqa: E731
            wait_for(lambda: set(LAZY_CHUNKS) <= loaded(), 20, f"{LAZY_CHUNKS} loaded before any upload (got {sorted(loaded())})")
            assert browser.evaluate("getComputedStyle(document.getElementById('seg-preload')"
                                    ".closest('.stElementContainer')).display") == "none"
            dropped = browser.evaluate("performance.now()")
            browser.set_files(STREAMLIT_INPUT, photo)
            wait_for(lambda: len(model_images(browser)) >= 3, 120, "the three model masks")
            wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
            late = [name for name, start in browser.evaluate(CODE_FETCHES_JS) if start >= dropped]
            assert late == [], f"fetched on the first upload: {late}"
        finally:
            browser.close()


def test_other_pages_render_in_chromium(weights_dir, pairs_dir, tmp_path):
    """Ground truth, Benchmark and About open from a deep link in a real browser, without an error."""
    expected = {"ground_truth": "Against the ground truth", "benchmark": "Benchmark",
                "about": "The architectures"}
    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        browser = Browser(height=1200)
        try:
            for path, heading in expected.items():
                browser.call("Page.navigate", url=f"{url}/{path}")
                text = wait_for(lambda: (t := browser.text()) and heading in t and t,
                                120, f"the {path} page")
                assert "Traceback" not in text
                assert browser.evaluate("document.querySelector('[data-testid=\"stException\"]') === null")
                browser.screenshot(tmp_path / f"{path}.png")
                assert (tmp_path / f"{path}.png").stat().st_size > 10_000
        finally:
            browser.close()


#: The interactive viewer's panels (Plotly draws each picture and its hover heatmap as an ``image``),
#: relative to the top of its plot: [the plot's height, [top, bottom] of each picture].
VIEWER_BOXES_JS = """(() => { const p = document.querySelector('.js-plotly-plot'); if (!p) return null;
  const r = p.getBoundingClientRect(), boxes = [...p.querySelectorAll('image')].map(i => i.getBoundingClientRect())
    .filter(b => b.width > 0).map(b => [b.top - r.top, b.bottom - r.top]);
  return boxes.length ? [r.height, boxes] : null; })()"""


def _viewer_rows(url: str, width: int, height: int, shot) -> tuple[float, list[tuple[float, float]]]:
    """Open scene 2.jpg's Inspect view at ``width`` x ``height``: the viewer's plot height and the
    top and bottom of each row of its pictures, relative to the plot's top."""
    browser = Browser(width=width, height=height)
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                     mobile=width < 500)
        browser.call("Page.navigate", url=f"{url}/?scene=2.jpg")
        wait_for(lambda: len(model_images(browser)) >= 3, 120, "the three model masks")
        wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
        click = ("(() => { const b = [...document.querySelectorAll('[data-testid=\"stButtonGroup\"] button')]"
                 ".find(e => e.innerText.trim() === 'Inspect'); if (b) b.click(); return !!b; })()")
        wait_for(lambda: browser.evaluate(click), 60, "the Inspect button")
        wait_for(lambda: browser.evaluate(VIEWER_BOXES_JS), 120, "the viewer's pictures")
        wait_for(lambda: browser.evaluate(SETTLED_JS), 60, "the page to settle")
        browser.painted()
        plot_height, boxes = browser.evaluate(VIEWER_BOXES_JS)
        browser.screenshot(shot)
    finally:
        browser.close()
    rows = []
    for top, bottom in sorted(boxes):
        if rows and top - rows[-1][0] < 4:  # a picture and its hover layer, or the same row
            rows[-1] = (rows[-1][0], max(rows[-1][1], bottom))
        else:
            rows.append((top, bottom))
    return plot_height, rows


def test_about_diagrams_stay_readable_on_a_phone(weights_dir, tmp_path):
    """At 390 px the About page's two diagrams (~720 px at their size) were shrunk to the column,
    their labels to ~10 px. Now they keep at least 540 px (~3/4 size) and scroll sideways in their
    own box, while the page itself stays 390 px wide."""
    with serve_app(weights_dir, None, tmp_path / "streamlit.log") as url:
        browser = Browser(width=390, height=844)
        try:
            browser.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1, mobile=True)
            browser.call("Page.navigate", url=f"{url}/about")
            wait_for(lambda: browser.evaluate("document.querySelectorAll('[data-testid=stGraphVizChart] svg').length") == 2,
                     120, "the two diagrams")
            charts = browser.evaluate("""[...document.querySelectorAll('[data-testid=stGraphVizChart]')].map(d =>
                [d.querySelector('svg').getBoundingClientRect().width, d.clientWidth, d.scrollWidth])""")
            page_width = browser.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()
    for svg_width, box, scrolled in charts:
        assert svg_width >= 540 and box <= 390 and scrolled >= 540, charts
    assert page_width <= 390, page_width


def test_inspect_view_has_no_blank_bands_on_a_phone(weights_dir, pairs_dir, tmp_path):
    """The Inspect view's figure was laid out for a 1000 px width: on a 390 px phone its panels,
    shrunk to the screen's width, sat in a figure as tall as on a desktop, with ~250 px of blank
    above the first row, between the rows and under the last. Now, at 390 and at 1440 px, the space
    above the first pictures holds only the tool bar and the titles, a row's titles are the only
    thing between two rows, and the figure ends where its pictures do."""
    from ui.viewer import MODEBAR, TITLE_ROW

    with serve_app(weights_dir, pairs_dir, tmp_path / "streamlit.log") as url:
        for width, height in ((390, 844), (1440, 900)):
            plot_height, rows = _viewer_rows(url, width, height, tmp_path / f"inspect_{width}.png")
            where = (width, plot_height, rows)
            assert len(rows) == 2, where  # photo, truth, U-Net / FCN-VGG16, FCN-ResNet50, the ensemble
            assert rows[0][0] <= MODEBAR + TITLE_ROW + 8, where
            assert rows[1][0] - rows[0][1] <= 60, where
            assert plot_height - rows[1][1] <= 12, where


def test_the_overlays_view_blends_in_the_browser_as_the_server_did(tmp_path):
    """The Overlays view lays each mask (its void pixels clear) over the photo at the opacity of a
    slider that runs in the browser; the colours are ``seg_core.viz.overlay``'s, which made the
    overlays on the server until 2026-12-03 (a rerun per slider step)."""
    import numpy as np

    from seg_core.viz import overlay
    from ui.views import data_url, mask_data_url, overlay_grid_html

    photo = np.zeros((40, 80, 3), np.uint8)
    photo[:, :40], photo[:, 40:] = (200, 30, 30), (20, 160, 220)
    mask = np.zeros((40, 80), np.uint8)  # road above, sky below, void on the right
    mask[20:], mask[:, 60:] = 10, 255
    page = tmp_path / "overlays.html"
    page.write_text(overlay_grid_html(data_url(photo, "PNG"), [("U-Net", mask_data_url(mask, void_clear=True))], alpha=0.3))
    browser = Browser(width=900, height=700)
    try:
        browser.call("Page.navigate", url=page.as_uri())
        wait_for(lambda: browser.evaluate("[...document.images].every(i => i.complete && i.naturalWidth)"), 30, "the pictures")
        browser.evaluate("(() => { const a = document.getElementById('alpha'); a.value = 0.7;"
                         " a.dispatchEvent(new Event('input')); })()")  # as a drag of the slider does
        browser.painted()
        box = browser.evaluate("(() => { const r = document.querySelector('img.mask').getBoundingClientRect();"
                               " return [r.left, r.top, r.width]; })()")
        browser.screenshot(tmp_path / "shot.png")
        shot = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB"))
        expected = overlay(photo, mask, 0.7)
        scale = box[2] / 80
        for y, x in ((10, 20), (10, 50), (30, 20), (30, 50), (10, 70), (30, 70)):  # the middles of the six blocks
            seen = shot[round(box[1] + (y + 0.5) * scale), round(box[0] + (x + 0.5) * scale)].astype(int)
            assert np.abs(seen - expected[y, x]).max() <= 3, (y, x, seen, expected[y, x])
    finally:
        browser.close()
