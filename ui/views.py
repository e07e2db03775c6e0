"""HTML of the picture views: a responsive grid of images, a draggable before/after slider and the
class legend; no Streamlit here, so the Gradio app draws the same legend.

Pictures travel inside the HTML as data URLs of display-size images (JPEG for photos and
overlays, PNG for masks), so a view arrives in one message and is drawn without further requests.
The grid wraps by itself: four across on a wide screen, two on a phone, with the legend right below.
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
from PIL import Image

from seg_core.palette import CLASS_HEX
from seg_core.viz import share_text


def data_url(image: np.ndarray, fmt: str = "JPEG") -> str:
    """``image`` as a ``data:`` URL: JPEG (quality 90) for photos, fast PNG for masks."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(image).save(buf, format="JPEG", quality=90)
    else:
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def mask_data_url(mask: np.ndarray, void_clear: bool = False) -> str:
    """A mask of train ids as a data URL of a palette PNG in the class colours: a third of the time
    and size of the RGB PNG (ignored pixels black, or with ``void_clear`` transparent: a layer
    over the photo)."""
    from seg_core.palette import COLORS, IGNORE_INDEX

    table = np.zeros((256, 3), np.uint8)
    table[: len(COLORS)] = COLORS
    im = Image.fromarray(np.asarray(mask, np.uint8), "L").convert("P")
    im.putpalette(table.ravel().tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1, **({"transparency": IGNORE_INDEX} if void_clear else {}))
    return f"data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


#: Every page, on a phone: plotly's mode bar (zoom, pan, download) sat on the charts' titles and
#: legends (touch gestures still zoom and pan, and Streamlit's own toolbar keeps the full screen);
#: the About page's diagrams, ~720 px wide, were shrunk to ~10 px text: they keep 540 px and scroll.
PAGE_CSS = ("<style>@media (max-width:600px){.js-plotly-plot .modebar-container{display:none}"
            "[data-testid=stGraphVizChart]{overflow-x:auto}[data-testid=stGraphVizChart] svg{min-width:540px}}"
            "@media (min-width:601px){.seg-phone-only{display:none !important}}</style>")

#: On a phone (one picture a row) the cells marked late move after the others: the first mask
#: then comes right after the photo, in the first screen.
_LATE_ON_PHONES = "<style>@media (max-width:600px){.seg-grid .seg-late{order:1}}</style>"


def image_grid_html(items: list[tuple[str, str | None]], min_width: int = 160, notes: dict[str, str] | None = None,
                    late: tuple[str, ...] = ()) -> str:
    """Captioned images (``(caption, data URL or None)``) in a grid of cells at least ``min_width``
    wide (one a row where the screen is narrower); ``None`` leaves a note in its place: "not
    available", or ``notes[caption]`` (e.g. "averaging…" while that picture is still being
    computed). Captions in ``late`` go after the others on a phone."""
    cells = []
    for caption, url in items:
        title = html.escape(caption)
        cls = "seg-cell seg-late" if caption in late else "seg-cell"
        if url is None:
            note = html.escape((notes or {}).get(caption, "not available"))
            cells.append(f"<figure class='{cls}' style='margin:0'><div class='seg-note' style='padding:2em 0;color:#888'>"
                         f"{title}: {note}</div></figure>")
        else:
            cells.append(f"<figure class='{cls}' style='margin:0'><img src='{url}' alt='{title}' "
                         f"style='width:100%;height:auto;display:block;border-radius:4px'>"
                         f"<figcaption style='font-size:0.85em;color:#555;padding-top:2px'>{title}</figcaption></figure>")
    return ((_LATE_ON_PHONES if late else "") + f"<div class='seg-grid' style='display:grid;gap:8px;"
            f"grid-template-columns:repeat(auto-fit,minmax(min({min_width}px,100%),1fr))'>{''.join(cells)}</div>")


def overlay_grid_html(photo_url: str, layers: list[tuple[str, str | None]], alpha: float = 0.5, min_width: int = 160,
                      notes: dict[str, str] | None = None) -> str:
    """A self-contained page: the photo, then each model's colour mask over it (``(title, data URL
    of ``mask_data_url(void_clear=True)`` or None)``, ``None``: a note as in ``image_grid_html``), in
    a grid of cells at least ``min_width`` wide, under an opacity slider that runs in the browser:
    moving it asks the server nothing (a rerun that made new overlays took 0.15–0.19 s). The blend
    is ``seg_core.viz.overlay``'s: the mask at ``alpha`` over the photo, void pixels the photo's."""
    figure = "<figure class='seg-cell'>{}<figcaption>{}</figcaption></figure>"
    cells = [figure.format(f"<img src='{photo_url}' alt='Photo'>", "Photo")]
    for title, url in layers:
        name = html.escape(f"{title} overlay")
        if url is None:
            note = html.escape((notes or {}).get(f"{title} overlay", "not available"))
            cells.append(f"<figure class='seg-cell'><div class='seg-note'>{name}: {note}</div></figure>")
        else:
            cells.append(figure.format(f"<div class='layer'><img src='{photo_url}' alt=''><img class='mask' src='{url}' "
                                       f"alt='{name}'></div>", name))
    start = float(np.clip(alpha, 0, 1))
    return f"""<!doctype html><meta charset="utf-8"><style>
body{{margin:0;font-family:"Source Sans Pro",sans-serif;--a:{start}}}
.bar{{display:flex;align-items:center;gap:10px;font-size:14px;margin-bottom:8px;white-space:nowrap}} .bar input{{flex:0 1 260px}}
.seg-grid{{display:grid;gap:8px;grid-template-columns:repeat(auto-fit,minmax(min({min_width}px,100%),1fr))}}
figure{{margin:0}} img{{width:100%;height:auto;display:block;border-radius:4px}}
.layer{{position:relative}} .layer .mask{{position:absolute;left:0;top:0;height:100%;opacity:var(--a)}}
figcaption{{font-size:0.85em;color:#555;padding-top:2px}} .seg-note{{padding:2em 0;color:#888}}
</style><label class="bar">Overlay opacity <input type="range" id="alpha" min="0" max="1" step="0.05" value="{start}">
<output id="shown">{start:.2f}</output></label><div class="seg-grid">{''.join(cells)}</div>
<script>
const alpha = document.getElementById('alpha'), shown = document.getElementById('shown');
function set(v) {{ document.body.style.setProperty('--a', v); alpha.value = v; shown.textContent = (+v).toFixed(2); }}
try {{ const kept = sessionStorage.getItem('seg-overlay-opacity'); if (kept !== null) set(kept); }} catch (err) {{}}
alpha.addEventListener('input', () => {{ set(alpha.value);
  try {{ sessionStorage.setItem('seg-overlay-opacity', alpha.value); }} catch (err) {{}} }});
</script>"""


def before_after_html(photo_url: str, overlays: dict[str, str], reveal: float = 0.5, max_height: int = 560) -> str:
    """A self-contained page: the photo with one overlay revealed left of a seam that follows the
    pointer (drag, or the arrow keys), and buttons to switch between the ``overlays``
    (``{title: data URL}``). Everything runs in the browser; the server is not asked again."""
    titles = list(overlays)
    first = titles[0]
    buttons = "".join(
        f"<button data-k='{i}' class='{'on' if t == first else ''}'>{html.escape(t)}</button>" for i, t in enumerate(titles))
    start = round(100 * float(np.clip(reveal, 0, 1)))
    return f"""<!doctype html><meta charset="utf-8"><style>
body{{margin:0;font-family:sans-serif}} .bar{{display:flex;gap:6px;flex-wrap:wrap;margin-bottom:6px}}
button{{font:inherit;font-size:14px;padding:3px 10px;border:1px solid #bbb;border-radius:6px;background:#fff;cursor:pointer}}
button.on{{background:#262730;color:#fff;border-color:#262730}}
.box{{position:relative;display:block;width:100%;touch-action:none;cursor:ew-resize;user-select:none}}
.box img{{display:block;width:100%;height:auto;pointer-events:none}}
#top{{position:absolute;left:0;top:0;width:100%;height:100%}}
#seam{{position:absolute;top:0;bottom:0;width:2px;margin-left:-1px;background:#fff;box-shadow:0 0 3px #000}}
#seam::after{{content:'⇔';position:absolute;top:50%;left:-11px;width:24px;height:24px;margin-top:-12px;border-radius:12px;
background:#fff;color:#262730;font-size:15px;line-height:24px;text-align:center;box-shadow:0 0 3px #000}}
.note{{font-size:13px;color:#555;margin-top:4px}}
</style><div class="bar">{buttons}</div>
<div class="box" id="box" tabindex="0" role="slider" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{start}">
<img src="{photo_url}" alt="photo"><img id="top" src="{overlays[first]}" alt="overlay"><div id="seam"></div></div>
<div class="note">Drag across the picture: left of the seam the overlay of <b id="name">{html.escape(first)}</b>, right of it the photo.</div>
<script>
const urls = {json.dumps(list(overlays.values()))}, names = {json.dumps(titles)};
const box = document.getElementById('box'), top_ = document.getElementById('top'), seam = document.getElementById('seam');
let v = {start};
function show(p) {{ v = Math.max(0, Math.min(100, p)); top_.style.clipPath = `inset(0 ${{100 - v}}% 0 0)`;
  seam.style.left = v + '%'; box.setAttribute('aria-valuenow', Math.round(v)); }}
function at(e) {{ const r = box.getBoundingClientRect(); show(100 * (e.clientX - r.left) / r.width); }}
box.addEventListener('pointerdown', e => {{ at(e); try {{ box.setPointerCapture(e.pointerId); }} catch (err) {{}} }});
box.addEventListener('pointermove', e => {{ if (e.buttons) at(e); }});
box.addEventListener('keydown', e => {{ if (e.key === 'ArrowLeft') show(v - 5); if (e.key === 'ArrowRight') show(v + 5); }});
// The picture fills the panel's width (a 256 px val photo was drawn 256 px wide in a 980 px
// panel), up to {max_height} px high.
const photo = box.querySelector('img');
function fit() {{ if (photo.naturalHeight) box.style.maxWidth = ({max_height} * photo.naturalWidth / photo.naturalHeight) + 'px'; }}
photo.complete ? fit() : photo.addEventListener('load', fit);
document.querySelectorAll('button').forEach(b => b.addEventListener('click', () => {{
  document.querySelectorAll('button').forEach(o => o.classList.remove('on')); b.classList.add('on');
  top_.src = urls[+b.dataset.k]; document.getElementById('name').textContent = names[+b.dataset.k]; }}));
show(v);
</script>"""


#: Legend swatches: big enough to tell the dark blues apart (car, truck, bus, train, motorcycle),
#: with a dark border and a white inner ring so that dark colours do not merge into it.
SWATCH_STYLE = ("display:inline-block;width:28px;height:18px;border:1px solid #222;box-shadow:inset 0 0 0 1px #fff;"
                "border-radius:3px;vertical-align:middle;margin-right:8px;flex:none")


def class_key_html(phone_only: bool = False) -> str:
    """Every class's colour and name, in lines that wrap. ``phone_only``: shown only on screens up
    to 600 px (a comparison video's burnt-in legend is ~4 px letters there)."""
    chips = "".join(f"<span style='display:inline-flex;align-items:center;margin:0 12px 4px 0;white-space:nowrap'>"
                    f"<span style='{SWATCH_STYLE};width:18px;height:14px;margin-right:5px;background:{colour}'>"
                    f"</span>{html.escape(name)}</span>" for name, colour in CLASS_HEX.items())
    cls = " class='seg-phone-only'" if phone_only else ""
    return f"<div{cls} style='display:flex;flex-wrap:wrap;font-size:0.85em'>{chips}</div>"


def legend_html(rows: list[dict], headers: dict[str, str]) -> str:
    """The legend as an HTML table: a colour swatch and the class name, then one share column per
    entry of ``headers`` (``{mask name in rows: column title}``; ``rows`` from ``legend_rows``).
    Nothing wraps (titles keep their hyphens on one line); in a narrow container the titles stand
    upright (``LEGEND_NARROW_CSS``), and what still does not fit scrolls."""
    if not rows or not headers:
        return ""
    columns = list(headers)
    cell = "padding:3px 8px;border:none;white-space:nowrap"
    head = "".join(f"<th style='{cell};text-align:right'>{html.escape(t).replace('-', '&#8209;')}</th>"
                   for t in headers.values())
    body = []
    for row in rows:
        swatch = f"<span style='{SWATCH_STYLE};background:{row['color']}'></span>"
        cells = "".join(f"<td style='{cell};text-align:right'>{share_text(row['share'].get(c, 0.0))}</td>"
                        for c in columns)
        body.append(f"<tr><td style='{cell}'>{swatch}{html.escape(row['name'])}</td>{cells}</tr>")
    return (f"<style>{LEGEND_NARROW_CSS}</style><div class='seg-legend' style='overflow-x:auto'>"
            f"<table style='border-collapse:collapse;border:none;font-size:0.9em'>"
            f"<tr><th style='{cell};text-align:left'>class</th>{head}</tr>{''.join(body)}</table></div>")


#: In a narrow container (a phone) the share columns' titles turn upright, read bottom to top
#: (whole, never broken at a hyphen), so that the columns are as narrow as their numbers and four
#: models and the truth fit in 390 px; swatches and padding get smaller. Wider, nothing changes.
LEGEND_NARROW_CSS = (
    ".seg-legend{container-type:inline-size}"
    "@container (max-width:560px){"
    ".seg-legend th+th{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left!important;"
    "vertical-align:bottom;padding:4px 2px!important}"
    ".seg-legend th:first-child{vertical-align:bottom}"
    ".seg-legend td{padding:2px 6px!important}"
    ".seg-legend td>span{width:18px!important;height:14px!important;margin-right:5px!important}}")
