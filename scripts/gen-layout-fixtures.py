#!/usr/bin/env python3
"""Generate the layout-region fixtures in fixtures/layout/ (deterministic).

    /work/venv-fixtures/bin/python scripts/gen-layout-fixtures.py [--out DIR]

Same pinned packages as gen-fixtures.py (scripts/requirements-fixtures.txt).
Writes:

  two-column.pdf       a born-digital page: a full-width title, two columns
                       of text. The text is written line by line across the
                       page (left line, right line, ...; the right column's
                       baselines sit half a line lower), as generators that
                       emit text in y order do, so the text layer on its own
                       reads the columns interleaved.
  two-column-scan.png  the same page rendered at 150 dpi, grey, for OCR.
  table-figure.pdf     a page with a title, a paragraph, a ruled table with
                       its caption and a photo-like figure with its caption.
  manifest.json        the column texts, and the table's and figure's boxes
                       as drawn (PDF points, origin bottom-left).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image
from reportlab.lib.pagesizes import letter
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

SEED = 20261205
W, H = letter  # 612 x 792 pt
MARGIN = 54.0
GUTTER = 24.0
COL_W = (W - 2 * MARGIN - GUTTER) / 2
LEADING = 14.0

WORDS = (
    "archive ledger invoice freight customs parcel harbour tariff courier "
    "manifest voucher receipt pallet cargo vessel broker warehouse quota "
    "shipment clearance duty carrier consignee bill lading container berth "
    "dock crane terminal schedule route depot transit"
).split()


def column_lines(tag: str, n: int, rng: np.random.Generator) -> list[str]:
    lines = []
    for i in range(n):
        words = [WORDS[int(k)] for k in rng.integers(0, len(WORDS), 6)]
        lines.append(f"{tag} {i + 1:02d} " + " ".join(words))
    return lines


def prose(tag: str, n_lines: int, width: float, font: str, size: float,
          rng: np.random.Generator) -> list[tuple[str, bool]]:
    """Running text wrapped to `width` points: (line, starts a paragraph).
    Every sentence starts with `tag` and its number, so a reader can tell
    which column, and where in it, a line comes from."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    out: list[tuple[str, bool]] = []
    sentence = 0
    while len(out) < n_lines:
        words: list[str] = []
        for _ in range(int(rng.integers(3, 6))):
            sentence += 1
            body = [WORDS[int(k)] for k in rng.integers(0, len(WORDS), int(rng.integers(6, 12)))]
            words += [f"{tag}{sentence:02d}"] + body[:-1] + [body[-1] + "."]
        line, first = "", True
        for w in words:
            indent = 12.0 if first and not line else 0.0
            trial = f"{line} {w}".strip()
            if stringWidth(trial, font, size) + indent > width and line:
                out.append((line, first))
                line, first = w, False
            else:
                line = trial
        out.append((line, first))
    return out[:n_lines]


def canvas_for(buf: io.BytesIO) -> canvas.Canvas:
    c = canvas.Canvas(buf, pagesize=letter, invariant=1)
    c.setTitle("docpipe layout fixture")
    return c


def make_two_column() -> tuple[bytes, dict]:
    rng = np.random.default_rng(SEED)
    size = 9.5
    left_p = prose("L", 40, COL_W, "Helvetica", size, rng)
    right_p = prose("R", 40, COL_W, "Helvetica", size, rng)
    left = [t for t, _ in left_p]
    right = [t for t, _ in right_p]
    buf = io.BytesIO()
    c = canvas_for(buf)
    c.setFont("Helvetica-Bold", 18)
    c.drawCentredString(W / 2, H - 80, "Quarterly Report on Harbour Freight")
    c.setFont("Helvetica", 11)
    c.drawCentredString(W / 2, H - 100, "Port Authority Statistics Office")
    top = H - 140
    xl, xr = MARGIN, MARGIN + COL_W + GUTTER
    # Line by line across the page, in y order.
    items = [(top - i * LEADING, xl + 12.0 * p, t) for i, (t, p) in enumerate(left_p)]
    items += [
        (top - LEADING / 2 - i * LEADING, xr + 12.0 * p, t) for i, (t, p) in enumerate(right_p)
    ]
    items.sort(key=lambda it: (-it[0], it[1]))
    c.setFont("Helvetica", size)
    for y, x, t in items:
        c.drawString(x, y, t)
    c.setFont("Helvetica", 9)
    c.drawCentredString(W / 2, 40, "1")
    c.showPage()
    c.save()
    return buf.getvalue(), {"left": left, "right": right}


def photo(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """A photo-like picture: a smooth sky-to-ground gradient, hills, a sun
    and grain."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = np.stack([90 + 80 * y / h, 140 + 60 * y / h, 230 - 40 * y / h], -1)
    hill = h * (0.55 + 0.12 * np.sin(x / w * 6.0) + 0.05 * np.sin(x / w * 17.0))
    ground = np.stack([60 + 40 * (y / h), 120 - 30 * (y / h), 50 + 0 * y], -1)
    img = np.where((y > hill)[..., None], ground, sky)
    sun = (x - 0.75 * w) ** 2 + (y - 0.25 * h) ** 2 < (0.09 * w) ** 2
    img[sun] = [250, 220, 120]
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def make_table_figure() -> tuple[bytes, dict]:
    rng = np.random.default_rng(SEED + 1)
    buf = io.BytesIO()
    c = canvas_for(buf)
    c.setFont("Helvetica-Bold", 16)
    c.drawString(MARGIN, H - 72, "Harbour Freight by Terminal")
    c.setFont("Helvetica", 10)
    para = column_lines("Note", 4, rng)
    for i, t in enumerate(para):
        c.drawString(MARGIN, H - 100 - i * 13, t.replace("Note ", "").capitalize())
    # The table: a header row and 8 rows, 5 columns, fully ruled.
    cols = [MARGIN, MARGIN + 130, MARGIN + 230, MARGIN + 330, MARGIN + 420, W - MARGIN]
    row_h = 20.0
    t_top = H - 190
    rows = 9
    t_bottom = t_top - rows * row_h
    c.setFont("Helvetica-Bold", 9)
    c.drawString(MARGIN, t_top + 8, "Table 1: Tonnes handled per terminal and quarter")
    header = ["Terminal", "Q1", "Q2", "Q3", "Q4"]
    names = ["North Quay", "South Quay", "East Basin", "West Basin", "Container A",
             "Container B", "Bulk Pier", "Ro-Ro Ramp"]
    c.setLineWidth(0.8)
    for r in range(rows + 1):
        c.line(cols[0], t_top - r * row_h, cols[-1], t_top - r * row_h)
    for x in cols:
        c.line(x, t_top, x, t_bottom)
    for r in range(rows):
        y = t_top - r * row_h - 14
        cells = header if r == 0 else [names[r - 1]] + [
            f"{int(v):,}" for v in rng.integers(10_000, 99_999, 4)
        ]
        c.setFont("Helvetica-Bold" if r == 0 else "Helvetica", 9)
        for k, cell in enumerate(cells):
            c.drawString(cols[k] + 6, y, cell)
    # The figure: a photo below, with its caption under it.
    f_w, f_h = 300.0, 200.0
    f_x, f_top = (W - f_w) / 2, t_bottom - 40
    jpeg = io.BytesIO()
    photo(600, 400, rng).save(jpeg, "JPEG", quality=80)
    jpeg.seek(0)
    c.drawImage(ImageReader(jpeg), f_x, f_top - f_h, f_w, f_h)
    c.setFont("Helvetica-Oblique", 9)
    c.drawCentredString(W / 2, f_top - f_h - 16, "Figure 1: The North Quay at dawn")
    c.setFont("Helvetica", 9)
    c.drawCentredString(W / 2, 40, "2")
    c.showPage()
    c.save()
    boxes = {
        "table": [cols[0], t_bottom, cols[-1], t_top],
        "figure": [f_x, f_top - f_h, f_x + f_w, f_top],
    }
    return buf.getvalue(), boxes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures" / "layout")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    two, cols = make_two_column()
    (out / "two-column.pdf").write_bytes(two)
    page = pdfium.PdfDocument(two)[0]
    scan = page.render(scale=150 / 72).to_pil().convert("L")
    scan.save(out / "two-column-scan.png", optimize=True)
    tf, boxes = make_table_figure()
    (out / "table-figure.pdf").write_bytes(tf)
    manifest = {
        "two-column.pdf": cols,
        "two-column-scan.png": {**cols, "dpi": 150},
        "table-figure.pdf": {"boxes_pt": boxes, "page_pt": [W, H]},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
