#!/usr/bin/env python3
"""Generate docpipe's test fixtures (deterministic, seeded).

How to run (from the repository root):

    python3 -m venv /work/venv-fixtures
    /work/venv-fixtures/bin/pip install -r scripts/requirements-fixtures.txt
    /work/venv-fixtures/bin/python scripts/gen-fixtures.py            # writes fixtures/
    /work/venv-fixtures/bin/python scripts/gen-fixtures.py --verify   # writes, then checks
    /work/venv-fixtures/bin/python scripts/gen-fixtures.py --out /tmp/fx --verify

Every output is a pure function of this script, the constants below and the
pinned package versions in scripts/requirements-fixtures.txt: reportlab runs in
invariant mode (fixed dates and document id), all noise comes from
numpy.random.default_rng seeded with SEED, and the encrypted PDF gets a fixed
file identifier and RC4 (which uses no random IV). Two runs give byte-identical
files; `--verify` does not check that, run the script twice and `diff -r`.

Layout (see fixtures/README.md):
  fixtures/samples/  good documents (the shipped pipeline runs on this folder)
  fixtures/bad/      inputs that must become failed rows
  fixtures/manifest.json  expected status, error class, pages, text lines
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import reportlab
from PIL import Image, ImageDraw, ImageFont, ImageOps
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
)
from reportlab.lib.pagesizes import letter
from reportlab.pdfgen import canvas

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

SEED = 20240314
#: Raster resolution of every scanned-looking fixture, dots per inch.
DPI = 150
#: Skew applied to scanned.pdf page 1, degrees, counter-clockwise as displayed
#: (PIL Image.rotate(+3)); a deskewer must rotate it back by -3 degrees.
SKEW_DEG = 3.0
#: JPEG quality for scanned.pdf page images and photo-exif.jpg.
JPEG_QUALITY = 75
#: Gaussian noise sigma (grey levels, 0..255) added to scanned page images.
NOISE_SIGMA = 4.0
#: Fraction of pixels turned into dark specks on scanned page images.
SPECK_FRACTION = 0.0004
#: User password of bad/encrypted.pdf (owner password differs).
USER_PASSWORD = "docpipe-user"
OWNER_PASSWORD = "docpipe-owner"
#: Fixed PDF file identifier for the encrypted PDF (16 bytes).
FIXED_PDF_ID = b"docpipe-fixture!"
#: Detector input limit the wide page must exceed, pixels per side.
DETECTOR_LIMIT = 2000
#: Horizontal band where tile seams lie on the wide page, pixels.
SEAM_BAND = (2000, 2400)

LEFT_MARGIN_PT = 72.0
TOP_FIRST_BASELINE_PT = 96.0

# Page text: (font size pt, text, extra gap before the line in pt).
# Plain ASCII only; no "fi", "fl", "ff" sequences (ligature-prone).
PAGE_LINES: list[list[tuple[float, str, float]]] = [
    [
        (14, "Northwind Supply Company", 0),
        (12, "Invoice Number: INV-2024-0387", 14),
        (12, "Invoice Date: March 14, 2024", 0),
        (12, "Due Date: April 13, 2024", 0),
        (12, "Bill To: Harbor View Dental Group, 410 Market Street, Portland", 14),
        (12, "Desk chairs, 6 units at 145.00 each: 870.00", 14),
        (12, "Standing desks, 2 units at 182.28 each: 364.56", 0),
        (12, "Subtotal: 1,234.56", 14),
        (12, "Sales tax (8.25%): 101.85", 0),
        (13, "Total amount due: 1,336.41 USD", 0),
    ],
    [
        (14, "Payment Terms and Notes", 0),
        (12, "Payment is due within 30 days of the invoice date.", 14),
        (12, "Please include the invoice number with your payment.", 0),
        (12, "Bank transfer: Account 4417-2290-06, Routing 021000089", 0),
        (12, "Late payments may incur a charge of 1.5% per month.", 0),
        (12, "Questions? Call (503) 555-0142 or write to billing@northwind.example", 14),
        (12, "Goods were shipped on March 12, 2024 via ground freight.", 0),
        (12, "Thank you for your business!", 14),
        (11, "Page 2 of 2", 28),
    ],
]
#: Baseline-to-baseline distance for consecutive lines, points.
LINE_STEP_PT = 26.0

WIDE_SIZE = (4400, 900)
#: Pixel font size for the wide page; Vera's cap height is ~0.73 em, so
#: letters are ~40 px tall.
WIDE_FONT_PX = 56
WIDE_SEAM_LINE = (
    "This line crosses the seam between two tiles and must appear exactly once "
    "in the recognised text of this page"
)
# (x, y_top, text); y_top is the top of the text box in pixels.
WIDE_LINES: list[tuple[int, int, str]] = [
    (200, 70, "Quarterly Shipment Summary, Third Quarter 2024"),
    (200, 230, WIDE_SEAM_LINE),
    (200, 390, "Warehouse A received 125 cartons on July 9, 2024."),
    (2600, 550, "Warehouse B shipped 48 pallets on August 21, 2024."),
    (200, 710, "Total freight cost: 4,980.75 USD"),
]

SMALL_SIZE = (600, 120)
SMALL_TEXT = {
    "small.webp": "Receipt total: 42.50 USD",
    "small.bmp": "Delivery on May 3, 2024",
}

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def rng_for(tag: int) -> np.random.Generator:
    """A seeded generator per output, so outputs do not depend on each other."""
    return np.random.default_rng([SEED, tag])


def page_text_lines(page: int) -> list[str]:
    return [t for _, t, _ in PAGE_LINES[page]]


def vera_path() -> str:
    """Bitstream Vera Sans, shipped inside the reportlab wheel."""
    p = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"
    if not p.is_file():
        sys.exit(f"font not found: {p}")
    return str(p)


def make_born_digital() -> bytes:
    """Two US Letter pages of Helvetica text in a real text layer."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1, pageCompression=1)
    c.setTitle("docpipe fixture: born-digital invoice")
    c.setAuthor("docpipe fixtures")
    c.setSubject("Test fixture generated by scripts/gen-fixtures.py")
    c.setCreator("scripts/gen-fixtures.py")
    _, height = letter
    for lines in PAGE_LINES:
        y = height - TOP_FIRST_BASELINE_PT
        first = True
        for size, text, gap in lines:
            if not first:
                y -= LINE_STEP_PT + gap
            first = False
            c.setFillGray(0.0)
            c.setFont("Helvetica", size)
            c.drawString(LEFT_MARGIN_PT, y, text)
        c.showPage()
    c.save()
    return buf.getvalue()


def render_pages(pdf_bytes: bytes, dpi: int = DPI) -> list[Image.Image]:
    """Rasterise every page to 8-bit grayscale with PDFium."""
    doc = pdfium.PdfDocument(pdf_bytes)
    out = []
    try:
        for i in range(len(doc)):
            page = doc[i]
            w_pt, h_pt = page.get_size()
            bmp = page.render(scale=dpi / 72.0, grayscale=True)
            img = bmp.to_pil().convert("L")
            # PDFium rounds the bitmap size up (792 pt -> 1651 px at 150 DPI);
            # cut to the exact page size so the pixels map to whole points.
            img = img.crop((0, 0, round(w_pt * dpi / 72.0), round(h_pt * dpi / 72.0)))
            out.append(img.copy())
            page.close()
    finally:
        doc.close()
    return out


def add_scan_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Light scanner noise: slightly grey paper, Gaussian noise, dark specks."""
    a = np.asarray(img, dtype=np.float32)
    a = a * (247.0 / 255.0) + 4.0  # paper ~251, ink ~4
    a = a + rng.normal(0.0, NOISE_SIGMA, size=a.shape).astype(np.float32)
    specks = rng.random(a.shape) < SPECK_FRACTION
    a[specks] = rng.uniform(60.0, 160.0, size=int(specks.sum())).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def jpeg_bytes(img: Image.Image, quality: int = JPEG_QUALITY, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, **kw)
    return buf.getvalue()


def make_scanned(upright: list[Image.Image]) -> tuple[bytes, list[Image.Image]]:
    """Image-only PDF: page 1 skewed, page 2 stored rotated with /Rotate 90."""
    rng = rng_for(1)
    p1 = upright[0].rotate(
        SKEW_DEG, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255
    )
    p1 = add_scan_noise(p1, rng)
    # /Rotate 90 turns the page 90 degrees clockwise for display, so store the
    # image turned 90 degrees counter-clockwise (PIL ROTATE_90 is CCW).
    p2 = add_scan_noise(upright[1], rng).transpose(Image.Transpose.ROTATE_90)
    stored = [p1, p2]

    # Built with pypdf directly so that each page holds exactly one image
    # XObject (DCTDecode, DeviceGray) and nothing else: no fonts, no forms.
    writer = PdfWriter()
    for img in stored:
        w_pt = img.width * 72.0 / DPI
        h_pt = img.height * 72.0 / DPI
        page = writer.add_blank_page(width=w_pt, height=h_pt)
        xobj = DecodedStreamObject()
        xobj.set_data(jpeg_bytes(img))
        xobj.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Image"),
                NameObject("/Width"): NumberObject(img.width),
                NameObject("/Height"): NumberObject(img.height),
                NameObject("/ColorSpace"): NameObject("/DeviceGray"),
                NameObject("/BitsPerComponent"): NumberObject(8),
                NameObject("/Filter"): NameObject("/DCTDecode"),
            }
        )
        content = DecodedStreamObject()
        content.set_data(f"q {w_pt:.4f} 0 0 {h_pt:.4f} 0 0 cm /Im0 Do Q".encode())
        page[NameObject("/Resources")] = DictionaryObject(
            {
                NameObject("/XObject"): DictionaryObject(
                    {NameObject("/Im0"): writer._add_object(xobj)}  # noqa: SLF001
                )
            }
        )
        page[NameObject("/Contents")] = writer._add_object(content)  # noqa: SLF001
    writer.add_metadata({"/Title": "docpipe fixture: scanned invoice",
                         "/Creator": "scripts/gen-fixtures.py"})
    # /Rotate 90 set through pypdf's page API.
    writer.pages[1].rotate(90)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), stored


def make_tiff(upright: list[Image.Image]) -> bytes:
    """Two-page 8-bit grayscale TIFF, LZW, 150 DPI, light specks only."""
    rng = rng_for(2)
    frames = []
    for img in upright:
        a = np.asarray(img).copy()
        specks = rng.random(a.shape) < SPECK_FRACTION
        a[specks] = 96
        frames.append(Image.fromarray(a, mode="L"))
    buf = io.BytesIO()
    frames[0].save(
        buf,
        format="TIFF",
        save_all=True,
        append_images=frames[1:],
        compression="tiff_lzw",
        dpi=(DPI, DPI),
    )
    return buf.getvalue()


def make_photo_exif(upright_p1: Image.Image) -> bytes:
    """RGB JPEG of page 1 stored turned 90 degrees CCW with EXIF Orientation 6.

    Orientation 6 means "rotate 90 degrees clockwise to display", which brings
    the stored image upright.
    """
    rng = rng_for(3)
    stored = add_scan_noise(upright_p1, rng).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    return jpeg_bytes(stored.convert("RGB"), exif=exif.tobytes(), dpi=(DPI, DPI))


def text_box(font: ImageFont.FreeTypeFont, xy: tuple[int, int], text: str):
    x0, y0, x1, y1 = font.getbbox(text)
    return [xy[0] + x0, xy[1] + y0, xy[0] + x1, xy[1] + y1]


def make_wide_png() -> tuple[bytes, list[list[int]]]:
    font = ImageFont.truetype(vera_path(), WIDE_FONT_PX)
    img = Image.new("L", WIDE_SIZE, 255)
    d = ImageDraw.Draw(img)
    boxes = []
    for x, y, text in WIDE_LINES:
        box = text_box(font, (x, y), text)
        if box[2] > WIDE_SIZE[0] - 50 or box[3] > WIDE_SIZE[1] - 20:
            sys.exit(f"wide-page line does not fit: {text!r} {box}")
        crosses = box[0] < SEAM_BAND[0] - 100 and box[2] > SEAM_BAND[1] + 100
        near = box[2] > SEAM_BAND[0] - 150 and box[0] < SEAM_BAND[1] + 150
        if text == WIDE_SEAM_LINE and not crosses:
            sys.exit(f"seam line does not cross the seam band: {box}")
        if text != WIDE_SEAM_LINE and near:
            sys.exit(f"non-seam line comes near the seam band: {text!r} {box}")
        d.text((x, y), text, fill=0, font=font)
        boxes.append(box)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True, dpi=(DPI, DPI))
    return buf.getvalue(), boxes


def make_small(text: str, fmt: str) -> tuple[bytes, list[int]]:
    font_px = 44
    font = ImageFont.truetype(vera_path(), font_px)
    while font.getlength(text) > SMALL_SIZE[0] - 60:
        font_px -= 1
        font = ImageFont.truetype(vera_path(), font_px)
    img = Image.new("L", SMALL_SIZE, 255)
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = font.getbbox(text)
    x = (SMALL_SIZE[0] - (x1 - x0)) // 2 - x0
    y = (SMALL_SIZE[1] - (y1 - y0)) // 2 - y0
    d.text((x, y), text, fill=0, font=font)
    buf = io.BytesIO()
    if fmt == "WEBP":
        img.save(buf, format="WEBP", lossless=True, quality=100, method=6)
    else:
        img.save(buf, format="BMP")
    return buf.getvalue(), text_box(font, (x, y), text)


def make_encrypted(born: bytes) -> bytes:
    """born-digital.pdf encrypted with RC4-128 (pypdf's own RC4; no crypto deps).

    A fixed /ID keeps it deterministic: RC4 uses no random IV, and the key is
    derived from the passwords and ID[0] only.
    """
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(born)))
    fixed = ArrayObject([ByteStringObject(FIXED_PDF_ID), ByteStringObject(FIXED_PDF_ID)])
    writer._ID = fixed  # noqa: SLF001 - pypdf has no public setter
    writer.encrypt(USER_PASSWORD, OWNER_PASSWORD, algorithm="RC4-128")
    writer._ID = ArrayObject(  # noqa: SLF001 - encrypt() drew a random ID[1]
        [ByteStringObject(FIXED_PDF_ID), ByteStringObject(FIXED_PDF_ID)]
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def pdf_page(lines: list[str], text_layer: bool, **extra) -> dict:
    d = {"text_layer": text_layer, "lines": lines}
    d.update(extra)
    return d


def generate(out: Path) -> dict:
    samples = out / "samples"
    bad = out / "bad"
    samples.mkdir(parents=True, exist_ok=True)
    bad.mkdir(parents=True, exist_ok=True)

    for lines in PAGE_LINES:
        for _, t, _ in lines:
            if not t.isascii() or re.search(r"f[fil]", t):
                sys.exit(f"line is not plain ligature-free ASCII: {t!r}")

    files: list[dict] = []

    def write(rel: str, data: bytes) -> None:
        (out / rel).write_bytes(data)

    # --- good documents -----------------------------------------------------
    born = make_born_digital()
    write("samples/born-digital.pdf", born)
    letter_px = [round(letter[0] * DPI / 72), round(letter[1] * DPI / 72)]
    files.append(
        {
            "path": "samples/born-digital.pdf",
            "kind": "pdf",
            "status": "ok",
            "page_count": 2,
            "pages": [
                pdf_page(page_text_lines(i), True, rotate=0, skew_deg=0.0,
                         width_pt=letter[0], height_pt=letter[1])
                for i in range(2)
            ],
        }
    )

    upright = render_pages(born)

    scanned, _ = make_scanned(upright)
    write("samples/scanned.pdf", scanned)
    files.append(
        {
            "path": "samples/scanned.pdf",
            "kind": "pdf",
            "status": "ok",
            "page_count": 2,
            "pages": [
                pdf_page(page_text_lines(0), False, rotate=0, skew_deg=SKEW_DEG,
                         skew_direction="counter-clockwise", dpi=DPI,
                         width_pt=letter[0], height_pt=letter[1]),
                pdf_page(page_text_lines(1), False, rotate=90, skew_deg=0.0, dpi=DPI,
                         width_pt=letter[1], height_pt=letter[0],
                         note="stored turned 90 deg CCW; /Rotate 90 displays it upright"),
            ],
        }
    )

    write("samples/scan-pages.tiff", make_tiff(upright))
    files.append(
        {
            "path": "samples/scan-pages.tiff",
            "kind": "tiff",
            "status": "ok",
            "page_count": 2,
            "pages": [
                pdf_page(page_text_lines(i), False, dpi=DPI,
                         width_px=letter_px[0], height_px=letter_px[1])
                for i in range(2)
            ],
        }
    )

    write("samples/photo-exif.jpg", make_photo_exif(upright[0]))
    files.append(
        {
            "path": "samples/photo-exif.jpg",
            "kind": "jpeg",
            "status": "ok",
            "page_count": 1,
            "exif_orientation": 6,
            "pages": [
                pdf_page(page_text_lines(0), False, dpi=DPI,
                         width_px=letter_px[0], height_px=letter_px[1],
                         note="stored 1650x1275 (turned 90 deg CCW); EXIF 6 makes it upright")
            ],
        }
    )

    wide, wide_boxes = make_wide_png()
    write("samples/wide-page.png", wide)
    files.append(
        {
            "path": "samples/wide-page.png",
            "kind": "png",
            "status": "ok",
            "page_count": 1,
            "seam_line": WIDE_SEAM_LINE,
            "seam_band_px": list(SEAM_BAND),
            "pages": [
                pdf_page([t for _, _, t in WIDE_LINES], False,
                         width_px=WIDE_SIZE[0], height_px=WIDE_SIZE[1],
                         line_boxes_px=wide_boxes)
            ],
        }
    )

    for name, fmt, kind in (("small.webp", "WEBP", "webp"), ("small.bmp", "BMP", "bmp")):
        data, box = make_small(SMALL_TEXT[name], fmt)
        write(f"samples/{name}", data)
        files.append(
            {
                "path": f"samples/{name}",
                "kind": kind,
                "status": "ok",
                "page_count": 1,
                "pages": [
                    pdf_page([SMALL_TEXT[name]], False, width_px=SMALL_SIZE[0],
                             height_px=SMALL_SIZE[1], line_boxes_px=[box])
                ],
            }
        )

    # --- bad inputs -----------------------------------------------------------
    bad_files = [
        ("bad/empty.pdf", "pdf", "empty", b""),
        ("bad/truncated.pdf", "pdf", "corrupt", born[: int(len(born) * 0.4)]),
        ("bad/random.pdf", "pdf", "not_a_document", rng_for(4).bytes(4096)),
        ("bad/encrypted.pdf", "pdf", "encrypted", make_encrypted(born)),
        ("bad/notes.txt", "other", "not_a_document", b"not a document\n"),
        (
            "bad/fake.png",
            "png",
            "not_a_document",
            b"This file is named like a PNG image but holds only plain text.\n"
            b"There is no image header here, just words and 12345.\n",
        ),
    ]
    for rel, kind, cls, data in bad_files:
        if rel == "bad/random.pdf" and (data[:4] in (b"%PDF", b"\x89PNG") or b"%PDF" in data):
            sys.exit("random.pdf accidentally looks like a document; change SEED")
        write(rel, data)
        entry = {"path": rel, "kind": kind, "status": "failed", "error_class": cls}
        if cls == "encrypted":
            entry["encryption"] = "RC4-128 (PDF standard security handler V2 R3)"
            entry["user_password"] = USER_PASSWORD
        files.append(entry)

    manifest = {
        "version": 1,
        "generator": "scripts/gen-fixtures.py",
        "seed": SEED,
        "notes": [
            "kind is the format the file name claims (by extension).",
            "error_class is decided by content: 0 bytes -> empty; no known magic "
            "-> not_a_document; known format that fails to parse -> corrupt; "
            "needs a password -> encrypted.",
            "lines are in reading order, exactly as written into the document.",
            "skew_deg is counter-clockwise as displayed; rotate is the PDF /Rotate.",
            "width_pt/height_pt are the PDF MediaBox before /Rotate; width_px/height_px "
            "are the upright raster size (after EXIF orientation).",
            "line_boxes_px are [x0, y0, x1, y1] ink boxes of lines, upright pixels.",
        ],
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------


def norm_ws(s: str) -> str:
    return " ".join(s.split())


def verify(out: Path, manifest: dict) -> list[str]:
    errs: list[str] = []

    def check(cond: bool, msg: str) -> None:
        print(("ok   " if cond else "FAIL ") + msg)
        if not cond:
            errs.append(msg)

    entries = {e["path"]: e for e in manifest["files"]}
    on_disk = sorted(
        str(p.relative_to(out)) for p in out.rglob("*")
        if p.is_file() and p.name not in ("manifest.json", "README.md")
    )
    check(sorted(entries) == on_disk, f"manifest covers exactly the files on disk ({len(on_disk)})")

    # born-digital: text layer equals manifest lines
    born = (out / "samples/born-digital.pdf").read_bytes()
    doc = pdfium.PdfDocument(born)
    check(len(doc) == 2, "born-digital.pdf has 2 pages")
    for i in range(len(doc)):
        page = doc[i]
        tp = page.get_textpage()
        got = tp.get_text_range()
        want = " ".join(entries["samples/born-digital.pdf"]["pages"][i]["lines"])
        check(norm_ws(got) == norm_ws(want), f"born-digital.pdf page {i + 1} text layer matches")
        w, h = page.get_size()
        check((round(w), round(h)) == (612, 792), f"born-digital.pdf page {i + 1} is US Letter")
        tp.close()
        page.close()
    doc.close()
    upright = render_pages(born)

    # scanned.pdf: no text, /Rotate, renders like born-digital
    scanned_imgs = render_pages((out / "samples/scanned.pdf").read_bytes())
    doc = pdfium.PdfDocument(str(out / "samples/scanned.pdf"))
    check(len(doc) == 2, "scanned.pdf has 2 pages")
    for i in range(len(doc)):
        page = doc[i]
        tp = page.get_textpage()
        check(tp.count_chars() == 0, f"scanned.pdf page {i + 1} has no text layer")
        tp.close()
        check(page.get_rotation() == (0, 90)[i], f"scanned.pdf page {i + 1} rotation {(0, 90)[i]}")
        check(len(list(page.get_objects())) == 1
              and next(page.get_objects()).type == pdfium.raw.FPDF_PAGEOBJ_IMAGE,
              f"scanned.pdf page {i + 1} holds exactly one image object")
        img = scanned_imgs[i]
        check(img.size == upright[i].size, f"scanned.pdf page {i + 1} displays {img.size} portrait")
        if i == 1:
            r = corr(img, upright[1])
            check(r > 0.8, f"scanned.pdf page 2 displays upright (corr {r:.3f})")
            r90 = corr(img.transpose(Image.Transpose.ROTATE_180), upright[1])
            check(r90 < 0.5, f"scanned.pdf page 2 upside-down corr is low ({r90:.3f})")
        else:
            r = corr(img.rotate(-SKEW_DEG, resample=Image.Resampling.BICUBIC, fillcolor=255),
                     upright[0])
            check(r > 0.8, f"scanned.pdf page 1 deskewed by -3 deg matches (corr {r:.3f})")
        page.close()
    doc.close()
    reader = PdfReader(str(out / "samples/scanned.pdf"))
    check(reader.pages[1].get("/Rotate") == 90, "scanned.pdf page 2 dict has /Rotate 90 (pypdf)")
    check(all("/Font" not in p["/Resources"] for p in reader.pages),
          "scanned.pdf pages have no /Font resources")

    # TIFF
    with Image.open(out / "samples/scan-pages.tiff") as im:
        check(im.n_frames == 2, "scan-pages.tiff has 2 frames")
        for i in range(im.n_frames):
            im.seek(i)
            check(im.mode == "L", f"tiff frame {i + 1} is 8-bit grayscale")
            check(im.info.get("compression") == "tiff_lzw", f"tiff frame {i + 1} is LZW")
            check(tuple(round(v) for v in im.info.get("dpi", (0, 0))) == (DPI, DPI),
                  f"tiff frame {i + 1} is {DPI} DPI")
            r = corr(im.convert("L"), upright[i])
            check(r > 0.9, f"tiff frame {i + 1} matches page {i + 1} (corr {r:.3f})")

    # photo-exif.jpg
    with Image.open(out / "samples/photo-exif.jpg") as im:
        check(im.getexif().get(0x0112) == 6, "photo-exif.jpg has EXIF Orientation 6")
        check(im.size == (upright[0].height, upright[0].width), f"photo stored landscape {im.size}")
        up = ImageOps.exif_transpose(im).convert("L")
        r = corr(up, upright[0])
        check(r > 0.8, f"photo-exif.jpg upright after applying EXIF (corr {r:.3f})")

    # wide page
    with Image.open(out / "samples/wide-page.png") as im:
        check(im.mode == "L" and max(im.size) > DETECTOR_LIMIT,
              f"wide-page.png is grayscale {im.size}, over the {DETECTOR_LIMIT} px limit")
        a = np.asarray(im)
        band = a[:, SEAM_BAND[0]:SEAM_BAND[1]]
        dark_rows = np.where((band < 128).any(axis=1))[0]
        seam_box = entries["samples/wide-page.png"]["pages"][0]["line_boxes_px"][1]
        check(len(dark_rows) > 0 and dark_rows.min() >= seam_box[1] - 2
              and dark_rows.max() <= seam_box[3] + 2,
              "only the seam line has ink in the seam band")
        heights = [b[3] - b[1] for b in entries["samples/wide-page.png"]["pages"][0]["line_boxes_px"]]
        check(all(38 <= h <= 60 for h in heights), f"wide-page line box heights {heights}")

    for name in ("small.webp", "small.bmp"):
        with Image.open(out / "samples" / name) as im:
            im.load()
            check(im.size == SMALL_SIZE, f"{name} opens, size {im.size}, format {im.format}")

    # bad inputs
    check((out / "bad/empty.pdf").stat().st_size == 0, "empty.pdf is 0 bytes")
    for rel in ("bad/truncated.pdf", "bad/random.pdf"):
        try:
            pdfium.PdfDocument(str(out / rel))
            check(False, f"{rel} fails to open in PDFium")
        except pdfium.PdfiumError as e:
            check(True, f"{rel} fails to open in PDFium ({e})")
    check((out / "bad/random.pdf").stat().st_size == 4096, "random.pdf is 4096 bytes")
    enc = str(out / "bad/encrypted.pdf")
    try:
        pdfium.PdfDocument(enc)
        check(False, "encrypted.pdf refuses to open without a password")
    except pdfium.PdfiumError as e:
        check("password" in str(e).lower(), f"encrypted.pdf refuses to open without a password ({e})")
    doc = pdfium.PdfDocument(enc, password=USER_PASSWORD)
    check(len(doc) == 2, "encrypted.pdf opens with the user password, 2 pages")
    doc.close()
    r = PdfReader(enc)
    check(r.is_encrypted and r.trailer["/Encrypt"]["/V"] == 2 and r.trailer["/Encrypt"]["/R"] == 3,
          "encrypted.pdf uses RC4-128 (V2 R3)")
    for rel in ("bad/notes.txt", "bad/fake.png"):
        data = (out / rel).read_bytes()
        check(b"%PDF" not in data and not data.startswith(b"\x89PNG"), f"{rel} has no document magic")
        try:
            Image.open(out / rel)
            check(False, f"{rel} is not an image")
        except Exception:  # noqa: BLE001 - any decode failure is the point
            check(True, f"{rel} is not an image")

    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    check(total < 3 * 1024 * 1024, f"fixtures total {total} bytes < 3 MiB")
    return errs


def corr(a: Image.Image, b: Image.Image) -> float:
    """Pearson correlation of two same-size grayscale images (ink = signal)."""
    if a.size != b.size:
        return -1.0
    x = 255.0 - np.asarray(a, dtype=np.float64).ravel()
    y = 255.0 - np.asarray(b, dtype=np.float64).ravel()
    x -= x.mean()
    y -= y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent.parent
    ap.add_argument("--out", type=Path, default=here / "fixtures",
                    help="output folder (default: fixtures/ in the repository)")
    ap.add_argument("--verify", action="store_true", help="check the outputs after writing")
    args = ap.parse_args()
    manifest = generate(args.out)
    print(f"wrote {len(manifest['files'])} fixtures under {args.out}")
    if args.verify:
        errs = verify(args.out, manifest)
        if errs:
            print(f"{len(errs)} check(s) failed", file=sys.stderr)
            return 1
        print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
