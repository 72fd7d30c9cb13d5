#!/usr/bin/env python3
"""Train docpipe's small document VLM on generated pages and export it in the
Florence-2 ONNX layout (seeded, CPU only: the pages and the initial weights
are the same on every run; multi-threaded kernels round differently from
run to run, so the weights are close, not bit-identical).

    python3 -m venv /work/venv-train
    /work/venv-train/bin/pip install -r scripts/requirements-train.txt
    /work/venv-train/bin/python scripts/train-vlm.py train        # ~40 min on 2 cores
    /work/venv-train/bin/python scripts/train-vlm.py pages --seed 777 --n 200 --dir /tmp/held
    /work/venv-train/bin/python scripts/train-vlm.py check --pages /tmp/held

`train` writes fixtures/vlm/florence2-docfields/ (docpipe.json, tokenizer.json,
onnx/*.onnx, fields.schema.json, train-log.json). `pages` writes generated
pages (PNG) and their truth (truth.jsonl) for a seed. `check` decodes pages
greedily with the PyTorch model (the training framework) and with the
exported ONNX graphs through onnxruntime, compares the tokens, and prints the
field exact-match of both; with --docpipe it also runs `docpipe run` on the
pages (constrained and unconstrained) and scores the Parquet output.

**The pages.** An invoice or receipt header, 640x320 px: an optional title,
four fields (name, number, date, total), one per line in that order (the
order of the record, so the decoder reads top to bottom), at varied
positions, each with one of several label wordings and value formats, an
optional closing line, in one of 11 DejaVu fonts (Debian `fonts-dejavu-core` /
`fonts-dejavu-extra`, the paths in FONTS) at 22-32 px, with light skew
(+-1.5 deg), blur, noise and paper/ink tones. The target is the compact JSON
record `{"name":..,"number":..,"date":"YYYY-MM-DD","total":N.NN}`, keys in
the order of the field schema (which is also the order docpipe's grammar
emits them in). Names are a given name and a surname from two lists of 48
each; held-out pages use the same lists (new combinations, positions, fonts
and numbers), so this model reads documents like the ones it was trained on
and nothing else.

**The model.** The Florence-2 encoder-decoder layout (the graph builders are
scripts/gen-tiny-vlm.py's, with trained weights): a 4-layer strided CNN
vision encoder (640x320 page resized to 320x160 -> 10x40 = 400 image tokens),
a 1-layer text encoder over concat(image tokens, prompt), a 2-layer decoder
with self- and cross-attention, hidden 128, 4 heads of 32, byte-level BPE
tokenizer. The PyTorch module below computes exactly what the ONNX graphs
compute (pre-LayerNorm blocks, SiLU MLPs, sinusoidal positions, additive
-1e9 masks), so the exported weights are the trained ones, unchanged.

**The training.** AdamW (lr 2e-3, warm-up then cosine), batches of 24 fresh
pages, teacher forcing on `</s> <s> record </s>`. Besides the decoder's
loss, a training-only linear head on the image tokens predicts the
character drawn in each grid cell (the generator knows where it drew every
character): without it the decoder's loss sat at the level of guessing the
values (1.15 nats/token) for 750 steps in two runs, because a decoder that
attends evenly to 490 keys passes each image token too little gradient to
learn to see characters. The head is not exported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "vlm" / "florence2-docfields"

_spec = importlib.util.spec_from_file_location("gen_tiny_vlm", ROOT / "scripts" / "gen-tiny-vlm.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

TRAIN_SEED = 20261206
PAGE_W, PAGE_H = 640, 320  # generated page, px
IMG_W, IMG_H = 320, 160  # model input (the manifest's image.size is [H, W])
CFG = {"hidden": 128, "heads": 4, "head_dim": 32, "enc_layers": 1, "dec_layers": 2, "ffn": 512}
# Vision stem: (out channels, stride h, stride w) of each 3x3 conv (SiLU after each).
STEM = [(24, 2, 2), (48, 2, 2), (96, 2, 2), (CFG["hidden"], 2, 1)]
GRID = (IMG_H // 16, IMG_W // 8)
N_IMG = GRID[0] * GRID[1]
# Training only: a linear head on the image tokens predicts the character in
# each grid cell (256 bytes + none), so the vision encoder learns to see
# characters before the decoder has learnt where to look. Not exported.
AUX_NONE = 256
AUX_WEIGHT = 0.5
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PROMPT = "<s>Extract the fields as JSON: {schema}</s>"

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "number": {"type": "string", "maxLength": 12},
        "date": {"type": "string", "format": "date"},
        "total": {"type": "number"},
    },
    "required": ["name", "number", "date", "total"],
}

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansCondensed.ttf",
    "DejaVuSansCondensed-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerifCondensed.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
]

GIVEN = [
    "Ada", "Alan", "Anna", "Boris", "Carla", "Chen", "Dana", "David", "Elena", "Emil", "Eva", "Farah",
    "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal", "Jana", "Karl", "Kira", "Leo", "Lina",
    "Marco", "Maria", "Nadia", "Nils", "Olga", "Omar", "Paul", "Petra", "Quinn", "Rosa", "Rafael", "Sara",
    "Sven", "Tara", "Tomas", "Uma", "Victor", "Vera", "Walter", "Wendy", "Xavier", "Yara", "Yusuf", "Zoe",
]
SURNAMES = [
    "Novak", "Berg", "Costa", "Dietz", "Ellis", "Fischer", "Garcia", "Hansen", "Ibrahim", "Jensen",
    "Kowalski", "Larsen", "Meyer", "Nguyen", "Olsen", "Patel", "Quist", "Rossi", "Schmidt", "Tanaka",
    "Umar", "Varga", "Weber", "Xu", "Young", "Zimmer", "Brandt", "Carter", "Duarte", "Engel", "Fox",
    "Grant", "Holm", "Ito", "Keller", "Lund", "Moreau", "Nash", "Ortiz", "Price", "Reyes", "Sato",
    "Torres", "Vogel", "Wolf", "Lopez", "Kim", "Moss",
]
TITLES = ["INVOICE", "Invoice", "RECEIPT", "Receipt", "Sales Receipt", "TAX INVOICE", "Bill", "Statement"]
LABELS = {
    "name": ["Customer:", "Name:", "Bill to:", "Client:", "Sold to:", "Customer name"],
    "number": ["Invoice No.", "Invoice #", "No.", "Receipt No:", "Ref.", "Number:", "Doc no"],
    "date": ["Date:", "Issued:", "Invoice date:", "Dated", "Date of issue"],
    "total": ["Total:", "TOTAL", "Amount due:", "Grand total", "Balance due:", "Total amount"],
}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
DISTRACTORS = ["Thank you for your business", "Page 1 of 1", "Payment within 30 days", "Keep this receipt",
               "Original copy", "All prices include tax"]


# ---------------------------------------------------------------------------
# Generated pages
# ---------------------------------------------------------------------------


def fmt_date(rng: np.random.Generator, y: int, m: int, d: int) -> str:
    k = int(rng.integers(6))
    mon = MONTHS[m - 1]
    return [
        f"{y:04d}-{m:02d}-{d:02d}",
        f"{d:02d}.{m:02d}.{y:04d}",
        f"{d} {mon[:3]} {y}",
        f"{mon[:3]} {d}, {y}",
        f"{d:02d}/{m:02d}/{y:04d}",
        f"{d} {mon} {y}",
    ][k]


def fmt_total(rng: np.random.Generator, cents: int) -> str:
    whole, frac = divmod(cents, 100)
    plain = f"{whole}.{frac:02d}"
    grouped = f"{whole:,}.{frac:02d}"
    k = int(rng.integers(5))
    return [grouped, plain, f"${grouped}", f"{plain} EUR", f"USD {grouped}"][k]


def page(rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """One generated page (640x320, greyscale) and its record."""
    img, record, _ = page_with_chars(rng)
    return img, record


def page_with_chars(rng: np.random.Generator) -> tuple[Image.Image, dict, list]:
    """A page, its record, and the centre (x, y, page px, after the skew) of
    every character drawn on it, for the training's auxiliary loss."""
    chars: list[tuple[str, float, float]] = []
    y, m, d = int(rng.integers(2015, 2027)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    cents = int(math.exp(rng.uniform(math.log(100), math.log(999_999))))
    digits = int(rng.integers(4, 8))
    record = {
        "name": f"{GIVEN[rng.integers(len(GIVEN))]} {SURNAMES[rng.integers(len(SURNAMES))]}",
        "number": str(int(rng.integers(10 ** (digits - 1), 10**digits))),
        "date": f"{y:04d}-{m:02d}-{d:02d}",
        "total": f"{cents // 100}.{cents % 100:02d}",
    }
    shown = {
        "name": record["name"],
        "number": ("#" if rng.random() < 0.2 else "") + record["number"],
        "date": fmt_date(rng, y, m, d),
        "total": fmt_total(rng, cents),
    }
    paper = int(rng.integers(215, 256))
    ink = int(rng.integers(0, 70))
    img = Image.new("L", (PAGE_W, PAGE_H), paper)
    draw = ImageDraw.Draw(img)

    def put(xy, text, f):
        draw.text(xy, text, font=f, fill=ink)
        top, bottom = draw.textbbox(xy, text, font=f)[1::2]
        for i, ch in enumerate(text):
            if not ch.isspace():
                x = xy[0] + (f.getlength(text[:i]) + f.getlength(text[: i + 1])) / 2
                chars.append((ch, x, (top + bottom) / 2))
    font_file = FONT_DIR / FONTS[rng.integers(len(FONTS))]
    size = int(rng.integers(22, 33))
    font = ImageFont.truetype(str(font_file), size)
    left = int(rng.integers(8, 90))
    column = left + int(rng.integers(170, 260))  # value column when labels align
    aligned = rng.random() < 0.5
    gap = size * rng.uniform(1.15, 1.6)
    ypos = float(rng.integers(6, 30))
    if rng.random() < 0.7:
        tfont = ImageFont.truetype(str(font_file), min(size + int(rng.integers(2, 10)), 40))
        put((left + int(rng.integers(0, 120)), ypos), TITLES[rng.integers(len(TITLES))], tfont)
        ypos += gap * 1.3
    lines = [(LABELS[k][rng.integers(len(LABELS[k]))], shown[k]) for k in record]
    if rng.random() < 0.4:
        lines.append(("", DISTRACTORS[rng.integers(len(DISTRACTORS))]))
    for label, value in lines:
        if ypos + size > PAGE_H - 4:
            break
        if not label:
            put((left, ypos), value, font)
        elif aligned:
            put((left, ypos), label, font)
            put((max(column, left + draw.textlength(label, font=font) + size * 0.6), ypos), value, font)
        else:
            put((left, ypos), f"{label} {value}", font)
        ypos += gap
    angle = rng.uniform(-1.5, 1.5)
    img = img.rotate(angle, resample=Image.BICUBIC, fillcolor=paper)
    # PIL turns the page counter-clockwise by `angle` about its centre.
    a, cx, cy = math.radians(angle), PAGE_W / 2, PAGE_H / 2
    chars = [(ch, cx + (x - cx) * math.cos(a) + (y - cy) * math.sin(a),
              cy - (x - cx) * math.sin(a) + (y - cy) * math.cos(a)) for ch, x, y in chars]
    blur = rng.uniform(0.0, 1.2)
    if blur > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.normal(0.0, rng.uniform(0.0, 10.0), arr.shape)
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(arr), record, chars


def cell_labels(chars: list) -> np.ndarray:
    """The auxiliary target of one page: for each cell of the image-token
    grid, the byte of the character centred in it (AUX_NONE for none)."""
    grid = np.full(GRID, AUX_NONE, dtype=np.int64)
    sx, sy = IMG_W / PAGE_W / (IMG_W / GRID[1]), IMG_H / PAGE_H / (IMG_H / GRID[0])
    for ch, x, y in chars:
        r, c = int(y * sy), int(x * sx)
        if 0 <= r < GRID[0] and 0 <= c < GRID[1] and ord(ch) < 256:
            grid[r, c] = ord(ch)
    return grid.reshape(-1)


def record_text(record: dict) -> str:
    """The training target: compact JSON, the total as a number with 2 decimals."""
    return (
        '{"name":' + json.dumps(record["name"]) + ',"number":' + json.dumps(record["number"])
        + ',"date":' + json.dumps(record["date"]) + ',"total":' + record["total"] + "}"
    )


def pixels(img: Image.Image) -> np.ndarray:
    """The model input for one page: resized (bicubic) to IMG_W x IMG_H,
    /255, ImageNet mean/std, CHW (docpipe's preprocess, in numpy)."""
    small = img.convert("RGB").resize((IMG_W, IMG_H), Image.BICUBIC)
    a = np.asarray(small, dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1).copy()


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


def merge_pieces() -> list[str]:
    schema_json = json.dumps(SCHEMA, separators=(",", ":"))
    words = ["type", "object", "properties", "maxLength", "format", "required", "total", "number",
             "name", "date", "string", "Extract", " the", " fields", " as", " JSON", ":"]
    puncts = ['{"', '":"', '","', '":{"', '":', ',"', '"},"', '"}},"', '":["', '"]}', '"}', '},"']
    pieces = list(gen.MERGE_PIECES) + puncts + words + GIVEN + [" " + s for s in SURNAMES]
    assert "{schema}" not in schema_json
    seen, out = set(), []
    for p in pieces:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def load_tokenizer(text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(text)


# ---------------------------------------------------------------------------
# The model (PyTorch; computes what gen.florence_text_graphs + vision_graph do)
# ---------------------------------------------------------------------------

NEG = gen.NEG


def sinusoid(pos: torch.Tensor, dim: int) -> torch.Tensor:
    inv = torch.tensor(
        (1.0 / (10000.0 ** (np.arange(0, dim, 2, dtype=np.float64) / dim))).astype(np.float32)
    )
    ang = pos.float().unsqueeze(-1) * inv
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


class Model(nn.Module):
    """Parameters are named as in the ONNX graphs; linear weights are
    [in, out] (x @ W + b), as gen-tiny-vlm's Builder.linear stores them."""

    def __init__(self, vocab: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab = vocab
        self.p = nn.ParameterDict()
        E, F = CFG["hidden"], CFG["ffn"]
        cin = 3
        for i, (cout, _, _) in enumerate(STEM):
            fan = cin * 9
            self._add(f"vision.conv{i}.weight", torch.randn(cout, cin, 3, 3, generator=g) * math.sqrt(2.0 / fan))
            self._add(f"vision.conv{i}.bias", torch.zeros(cout))
            cin = cout
        self._add("vision.pos", torch.randn(N_IMG, E, generator=g) * 0.02)
        self._ln("vision.ln", E)
        self._lin("vision.proj", E, E, g)
        self._lin("aux", E, AUX_NONE + 1, g)
        self._add("embed_tokens.weight", torch.randn(vocab, E, generator=g) * 0.5)
        for i in range(CFG["enc_layers"]):
            p = f"encoder.layers.{i}"
            self._ln(p + ".ln1", E)
            for n in ("q", "k", "v", "o"):
                self._lin(f"{p}.{n}", E, E, g)
            self._ln(p + ".ln2", E)
            self._lin(p + ".mlp.fc1", E, F, g)
            self._lin(p + ".mlp.fc2", F, E, g)
        self._ln("encoder.ln_f", E)
        for i in range(CFG["dec_layers"]):
            p = f"decoder.layers.{i}"
            for ln in ("ln1", "ln2", "ln3"):
                self._ln(f"{p}.{ln}", E)
            for n in ("self.q", "self.k", "self.v", "self.o", "cross.q", "cross.k", "cross.v", "cross.o"):
                self._lin(f"{p}.{n}", E, E, g)
            self._lin(p + ".mlp.fc1", E, F, g)
            self._lin(p + ".mlp.fc2", F, E, g)
        self._ln("decoder.ln_f", E)
        self._lin("lm_head", E, vocab, g)

    def _add(self, name: str, t: torch.Tensor) -> None:
        self.p[name.replace(".", "__")] = nn.Parameter(t.float())

    def _lin(self, name: str, n_in: int, n_out: int, g: torch.Generator) -> None:
        self._add(name + ".weight", torch.randn(n_in, n_out, generator=g) / math.sqrt(n_in))
        self._add(name + ".bias", torch.zeros(n_out))

    def _ln(self, name: str, dim: int) -> None:
        self._add(name + ".weight", torch.ones(dim))
        self._add(name + ".bias", torch.zeros(dim))

    def w(self, name: str) -> torch.Tensor:
        return self.p[name.replace(".", "__")]

    def weights(self) -> dict[str, np.ndarray]:
        """What the ONNX graphs hold: everything but the auxiliary head."""
        return {
            k.replace("__", "."): v.detach().numpy().astype(np.float32)
            for k, v in self.p.items()
            if not k.startswith("aux__")
        }

    def lin(self, x, name):
        return x @ self.w(name + ".weight") + self.w(name + ".bias")

    def ln(self, x, name):
        return nn.functional.layer_norm(x, (x.shape[-1],), self.w(name + ".weight"), self.w(name + ".bias"), 1e-5)

    def mlp(self, x, name):
        h = self.lin(x, name + ".fc1")
        return self.lin(h * torch.sigmoid(h), name + ".fc2")

    @staticmethod
    def heads(x):
        b, s, _ = x.shape
        return x.reshape(b, s, CFG["heads"], CFG["head_dim"]).transpose(1, 2)

    @staticmethod
    def merge(x):
        b, h, s, d = x.shape
        return x.transpose(1, 2).reshape(b, s, h * d)

    @staticmethod
    def attend(q, k, v, mask):
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(CFG["head_dim"]))
        return torch.softmax(s + mask, dim=-1) @ v

    def vision(self, px: torch.Tensor) -> torch.Tensor:
        x = px
        for i, (_, sh, sw) in enumerate(STEM):
            x = nn.functional.conv2d(x, self.w(f"vision.conv{i}.weight"), self.w(f"vision.conv{i}.bias"),
                                     stride=(sh, sw), padding=1)
            x = x * torch.sigmoid(x)
        b = x.shape[0]
        t = x.reshape(b, CFG["hidden"], -1).transpose(1, 2)
        return self.lin(self.ln(t + self.w("vision.pos"), "vision.ln"), "vision.proj")

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.w("embed_tokens.weight")[ids]

    def encode(self, px: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """Encoder states for pages [b,3,H,W] and one unpadded prompt [p]."""
        return self.encode_image(self.vision(px), prompt)

    def encode_image(self, img: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        b = img.shape[0]
        x = torch.cat([img, self.embed(prompt).unsqueeze(0).expand(b, -1, -1)], dim=1)
        pos = torch.arange(x.shape[1])
        x = x + sinusoid(pos, CFG["hidden"])
        for i in range(CFG["enc_layers"]):
            p = f"encoder.layers.{i}"
            h = self.ln(x, p + ".ln1")
            a = self.attend(self.heads(self.lin(h, p + ".q")), self.heads(self.lin(h, p + ".k")),
                            self.heads(self.lin(h, p + ".v")), 0.0)
            x = x + self.lin(self.merge(a), p + ".o")
            x = x + self.mlp(self.ln(x, p + ".ln2"), p + ".mlp")
        return self.ln(x, "encoder.ln_f")

    def decode(self, enc: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits [b, s, vocab] for decoder inputs ids [b, s] (no cache)."""
        s = ids.shape[1]
        x = self.embed(ids) + sinusoid(torch.arange(s), CFG["hidden"])
        causal = torch.full((s, s), NEG).triu(1)
        for i in range(CFG["dec_layers"]):
            p = f"decoder.layers.{i}"
            h = self.ln(x, p + ".ln1")
            a = self.attend(self.heads(self.lin(h, p + ".self.q")), self.heads(self.lin(h, p + ".self.k")),
                            self.heads(self.lin(h, p + ".self.v")), causal)
            x = x + self.lin(self.merge(a), p + ".self.o")
            h = self.ln(x, p + ".ln2")
            a = self.attend(self.heads(self.lin(h, p + ".cross.q")), self.heads(self.lin(enc, p + ".cross.k")),
                            self.heads(self.lin(enc, p + ".cross.v")), 0.0)
            x = x + self.lin(self.merge(a), p + ".cross.o")
            x = x + self.mlp(self.ln(x, p + ".ln3"), p + ".mlp")
        return self.lin(self.ln(x, "decoder.ln_f"), "lm_head")

    @torch.no_grad()
    def greedy(self, px: torch.Tensor, prompt: torch.Tensor, ids: dict, max_new: int = 64) -> list[list[int]]:
        """Greedy decoding as docpipe does it unconstrained: start with
        decoder_start, force forced_bos, stop on eos (not included)."""
        enc = self.encode(px, prompt)
        b = px.shape[0]
        seq = torch.tensor([[ids["decoder_start"], ids["forced_bos"]]] * b)
        done = [False] * b
        out: list[list[int]] = [[ids["forced_bos"]] for _ in range(b)]
        for _ in range(max_new):
            nxt = self.decode(enc, seq)[:, -1].argmax(-1)
            for i in range(b):
                if not done[i]:
                    t = int(nxt[i])
                    if t == ids["eos"]:
                        done[i] = True
                    else:
                        out[i].append(t)
            if all(done):
                break
            seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
        return out


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


class TrainedBuilder(gen.Builder):
    """gen-tiny-vlm's Builder whose `normal` hands out trained weights."""

    def normal(self, name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> str:
        arr = self.trained[name]
        assert arr.shape == tuple(shape), (name, arr.shape, shape)
        return self.param(name, arr)


def vision_graph(b: gen.Builder) -> None:
    x = "pixel_values"
    cin = 3
    for i, (cout, sh, sw) in enumerate(STEM):
        w = b.normal(f"vision.conv{i}.weight", (cout, cin, 3, 3), 0.0)
        bias = b.normal(f"vision.conv{i}.bias", (cout,), 0.0)
        x = b.silu(b.op("Conv", [x, w, bias], kernel_shape=[3, 3], strides=[sh, sw], pads=[1, 1, 1, 1]))
        cin = cout
    E = CFG["hidden"]
    t = b.op("Transpose", [b.op("Reshape", [x, b.i64(0, E, -1)])], perm=[0, 2, 1])
    pos = b.normal("vision.pos", (N_IMG, E), 0.0)
    h = b.layer_norm(b.op("Add", [t, pos]), "vision.ln", E)
    b.linear(h, "vision.proj", E, E, out="image_features")


def export(model: Model, tok_text: str, ids: dict, vocab: int, out: Path, log: dict) -> None:
    W_out: dict[str, np.ndarray] = {}
    ctr = [0]
    trained = model.weights()

    def new_builder():
        b = TrainedBuilder(None, W_out, ctr)
        b.trained = trained
        return b

    b = new_builder()
    vision_graph(b)
    models = {
        "vision_encoder": gen.make_model(
            b,
            [gen.vi("pixel_values", gen.F32, ["batch_size", 3, IMG_H, IMG_W])],
            [gen.vi("image_features", gen.F32, ["batch_size", N_IMG, CFG["hidden"]])],
            "vision_encoder",
            f"docfields vision encoder (trained): 4 strided 3x3 convs -> {GRID[0]}x{GRID[1]} = {N_IMG} tokens.",
        )
    }
    models.update(gen.florence_text_graphs(new_builder, CFG, vocab, title="docfields"))
    unused = set(trained) - set(W_out)
    assert not unused, f"weights not exported: {sorted(unused)}"
    manifest = {
        "format": "docpipe-vlm/1",
        "architecture": "encoder-decoder",
        "family": "florence2",
        "graphs": dict(gen.FL_GRAPHS),
        "image": {"size": [IMG_H, IMG_W], "mean": MEAN.tolist(), "std": STD.tolist(), "resample": "bicubic",
                  "tiles": False, "image_tokens": N_IMG},
        "prompt": PROMPT,
        "tokens": {"bos": ids["<s>"], "pad": ids["<pad>"], "eos": ids["</s>"], "unk": ids["<unk>"],
                   "decoder_start": ids["</s>"], "forced_bos": ids["<s>"]},
        "decoder": {"layers": CFG["dec_layers"], "kv_heads": CFG["heads"], "head_dim": CFG["head_dim"],
                    "hidden": CFG["hidden"]},
        "encoder": {"layers": CFG["enc_layers"], "heads": CFG["heads"], "head_dim": CFG["head_dim"]},
        "vocab_size": vocab,
        "notes": "Trained by scripts/train-vlm.py on generated invoice/receipt headers only; reads "
                 "fields.schema.json's four fields from pages like those and nothing else. " + gen.FL_NOTES,
    }
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    for k, m in models.items():
        (out / "onnx" / f"{k}.onnx").write_bytes(m.SerializeToString())
    (out / "tokenizer.json").write_text(tok_text)
    (out / "docpipe.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "fields.schema.json").write_text(json.dumps(SCHEMA, indent=2) + "\n")
    (out / "train-log.json").write_text(json.dumps(log, indent=1) + "\n")


def tokenizer_and_ids():
    tok_text, ids, vocab = gen.tokenizer_json(gen.FL_SPECIALS, [], merge_pieces())
    return tok_text, ids, vocab


def prompt_ids(tok) -> list[int]:
    text = PROMPT.replace("{schema}", json.dumps(SCHEMA, separators=(",", ":")))
    return tok.encode(text, add_special_tokens=False).ids


def ids_of(ids: dict) -> dict:
    return {"decoder_start": ids["</s>"], "forced_bos": ids["<s>"], "eos": ids["</s>"], "pad": ids["<pad>"]}


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def batch(rng: np.random.Generator, tok, ids: dict, n: int):
    px, seqs, aux = [], [], []
    for _ in range(n):
        img, rec, chars = page_with_chars(rng)
        px.append(pixels(img))
        aux.append(cell_labels(chars))
        seqs.append(tok.encode(record_text(rec), add_special_tokens=False).ids)
    longest = max(len(s) for s in seqs)
    inp = np.full((n, longest + 2), ids["<pad>"], dtype=np.int64)
    lab = np.full((n, longest + 2), -100, dtype=np.int64)
    for i, s in enumerate(seqs):
        full = [ids["</s>"], ids["<s>"], *s, ids["</s>"]]
        inp[i, : len(full) - 1] = full[:-1]
        lab[i, : len(full) - 1] = full[1:]
    return torch.from_numpy(np.stack(px)), torch.from_numpy(inp), torch.from_numpy(lab), torch.from_numpy(np.stack(aux))


def train(args) -> int:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    tok_text, ids, vocab = tokenizer_and_ids()
    tok = load_tokenizer(tok_text)
    prompt = torch.tensor(prompt_ids(tok))
    model = Model(vocab, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params:,}  vocab {vocab}  prompt {len(prompt)} tokens  image tokens {N_IMG}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = min(300, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    t0 = time.time()
    history = []
    ema = aux_ema = None
    for step in range(args.steps):
        px, inp, lab, aux = batch(rng, tok, ids, args.batch)
        img = model.vision(px)
        logits = model.decode(model.encode_image(img, prompt), inp)
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), lab.reshape(-1), ignore_index=-100)
        aux_logits = model.lin(img, "aux")
        aux_loss = nn.functional.cross_entropy(aux_logits.reshape(-1, AUX_NONE + 1), aux.reshape(-1))
        total = loss + AUX_WEIGHT * aux_loss
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        aux_ema = aux_loss.item() if aux_ema is None else 0.98 * aux_ema + 0.02 * aux_loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            el = time.time() - t0
            print(f"step {step:5d}  loss {ema:.4f}  aux {aux_ema:.4f}  lr {sched.get_last_lr()[0]:.2e}  {el:7.0f}s",
                  flush=True)
            history.append({"step": step, "loss": round(ema, 5), "aux_loss": round(aux_ema, 5),
                            "seconds": round(el, 1)})
    elapsed = time.time() - t0
    model.eval()
    vrng = np.random.default_rng(args.seed + 1)
    pages = [page(vrng) for _ in range(64)]
    em = exact_match_torch(model, tok, prompt, ids, pages)
    print(f"trained {args.steps} steps x {args.batch} pages in {elapsed:.0f}s; "
          f"field exact-match on 64 fresh pages: {em}", flush=True)
    log = {"seed": args.seed, "steps": args.steps, "batch": args.batch, "lr": args.lr, "threads": args.threads,
           "seconds": round(elapsed, 1), "params": n_params, "torch": torch.__version__,
           "fresh_64_exact_match": em, "history": history}
    export(model, tok_text, ids, vocab, args.out, log)
    print(f"wrote {args.out}", flush=True)
    return 0


# ---------------------------------------------------------------------------
# Held-out pages, framework decoding, ONNX agreement, docpipe
# ---------------------------------------------------------------------------


def parse_fields(text: str) -> dict | None:
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        return None
    return v if isinstance(v, dict) else None


def field_hits(got: dict | None, want: dict) -> dict:
    got = got or {}
    hits = {}
    for k, v in want.items():
        g = got.get(k)
        if k == "total":
            try:
                w = float(v)
            except (TypeError, ValueError):
                hits[k] = g is None and v is None
                continue
            hits[k] = isinstance(g, (int, float)) and not isinstance(g, bool) and abs(g - w) < 0.005
        else:
            hits[k] = g == v
    return hits


def summarize(all_hits: list[dict]) -> dict:
    keys = list(SCHEMA["properties"])
    out = {k: round(sum(h[k] for h in all_hits) / len(all_hits), 4) for k in keys}
    out["all_fields"] = round(sum(sum(h.values()) for h in all_hits) / (len(all_hits) * len(keys)), 4)
    out["whole_record"] = round(sum(all(h.values()) for h in all_hits) / len(all_hits), 4)
    return out


def exact_match_torch(model, tok, prompt, ids, pages) -> dict:
    hits = []
    for i in range(0, len(pages), 16):
        chunk = pages[i : i + 16]
        px = torch.from_numpy(np.stack([pixels(img) for img, _ in chunk]))
        for (img, rec), seq in zip(chunk, model.greedy(px, prompt, ids_of(ids))):
            hits.append(field_hits(parse_fields(tok.decode(seq[1:])), rec))
    return summarize(hits)


def write_pages(args) -> int:
    rng = np.random.default_rng(args.seed)
    args.dir.mkdir(parents=True, exist_ok=True)
    with open(args.dir / "truth.jsonl", "w") as f:
        for i in range(args.n):
            img, rec = page(rng)
            name = f"page-{args.seed}-{i:04d}.png"
            img.save(args.dir / name, optimize=True)
            f.write(json.dumps({"file": name, **rec}) + "\n")
    print(f"wrote {args.n} pages to {args.dir}")
    return 0


def framework_tokens(args) -> int:
    """Writes framework.jsonl beside truth.jsonl in --pages: the PyTorch
    model's greedy tokens and text for each page (what tests/vlm_trained.rs
    compares docpipe's unconstrained decoding with)."""
    torch.set_num_threads(args.threads)
    tok = load_tokenizer((args.model / "tokenizer.json").read_text())
    _, ids, _ = tokenizer_and_ids()
    model = model_from_onnx(args.model)
    truth = [json.loads(line) for line in (args.pages / "truth.jsonl").read_text().splitlines()]
    with open(args.pages / "framework.jsonl", "w") as f:
        for t in truth:
            px = torch.from_numpy(pixels(Image.open(args.pages / t["file"]))[None])
            seq = model.greedy(px, torch.tensor(prompt_ids(tok)), ids_of(ids))[0]
            f.write(json.dumps({"file": t["file"], "tokens": seq[1:], "text": tok.decode(seq[1:])}) + "\n")
    print(f"wrote {args.pages / 'framework.jsonl'}")
    return 0


def model_from_onnx(model_dir: Path) -> Model:
    """The PyTorch model with the weights read back from the exported graphs."""
    import onnx
    from onnx import numpy_helper

    _, _, vocab = tokenizer_and_ids()
    model = Model(vocab, 0)
    w = {}
    for k in ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged"):
        for init in onnx.load(str(model_dir / "onnx" / f"{k}.onnx")).graph.initializer:
            w[init.name] = numpy_helper.to_array(init)
    with torch.no_grad():
        for name, p in model.p.items():
            if not name.startswith("aux__"):
                p.copy_(torch.from_numpy(w[name.replace("__", ".")]))
    return model.eval()


def onnx_greedy(sessions: dict, px: np.ndarray, prompt: list[int], ids: dict, max_new: int = 64):
    """Greedy decoding through the exported graphs with onnxruntime, with the
    KV cache as docpipe runs it (step 0 no cache, then one token per step)."""
    b = px.shape[0]
    img = sessions["vision_encoder"].run(None, {"pixel_values": px})[0]
    pe = sessions["embed_tokens"].run(None, {"input_ids": np.array([prompt] * b, dtype=np.int64)})[0]
    x = np.concatenate([img, pe], axis=1)
    mask = np.ones(x.shape[:2], dtype=np.int64)
    enc = sessions["encoder_model"].run(None, {"attention_mask": mask, "inputs_embeds": x})[0]
    dec = sessions["decoder_model_merged"]
    names = [o.name for o in dec.get_outputs()]
    H, D, L = CFG["heads"], CFG["head_dim"], CFG["dec_layers"]
    past = {}
    for i in range(L):
        for part in ("decoder", "encoder"):
            for kv in ("key", "value"):
                past[f"past_key_values.{i}.{part}.{kv}"] = np.zeros((b, H, 0, D), np.float32)
    tok = np.array([[ids["decoder_start"]]] * b, dtype=np.int64)
    out = [[] for _ in range(b)]
    done = [False] * b
    enc_kv = None
    for step in range(max_new + 1):
        emb = sessions["embed_tokens"].run(None, {"input_ids": tok})[0]
        feeds = {"encoder_attention_mask": mask, "encoder_hidden_states": enc, "inputs_embeds": emb,
                 "use_cache_branch": np.array([step > 0]), **past}
        res = dict(zip(names, dec.run(None, feeds)))
        if step == 0:
            enc_kv = {k: v for k, v in res.items() if ".encoder." in k}
        for i in range(L):
            for kv in ("key", "value"):
                past[f"past_key_values.{i}.decoder.{kv}"] = res[f"present.{i}.decoder.{kv}"]
                past[f"past_key_values.{i}.encoder.{kv}"] = enc_kv[f"present.{i}.encoder.{kv}"]
        nxt = res["logits"][:, -1].argmax(-1) if step > 0 else np.full(b, ids["forced_bos"])
        for i in range(b):
            if not done[i]:
                if int(nxt[i]) == ids["eos"]:
                    done[i] = True
                else:
                    out[i].append(int(nxt[i]))
        if all(done):
            break
        tok = nxt.reshape(b, 1).astype(np.int64)
    return out


def docpipe_fields(bin_path: Path, pages_dir: Path, model_dir: Path, constrained: bool, batch_size: int,
                   work: Path) -> tuple[dict, str]:
    """Runs `docpipe run` (engine vlm) on the pages; returns {file name:
    record} from the documents table (read with pyarrow) and docpipe's
    summary line for the VLM."""
    import pyarrow.dataset as ds

    out = work / ("out-c" if constrained else "out-u")
    pipeline = work / ("c.yaml" if constrained else "u.yaml")
    pipeline.write_text(
        f"name: docfields\ninput: {{path: {pages_dir}, include: ['*.png']}}\nocr: {{mode: never}}\n"
        f"extract: {{schema: {model_dir / 'fields.schema.json'}, engine: vlm, model: {model_dir}, "
        f"batch_size: {batch_size}, max_new_tokens: 128, constrained: {str(constrained).lower()}}}\n"
        f"runtime: {{device: cpu}}\noutput: {{path: {out}}}\n"
    )
    res = subprocess.run([str(bin_path), "run", str(pipeline)], check=True, capture_output=True, text=True)
    vlm_line = next((ln.strip() for ln in (res.stdout + res.stderr).splitlines() if "VLM " in ln), "")
    cols = ["uri", "status", *SCHEMA["properties"]]
    table = ds.dataset(str(out / "documents"), format="parquet").to_table(columns=cols).to_pylist()
    recs = {}
    for row in table:
        rec = {k: row.get(k) for k in SCHEMA["properties"]}
        if rec.get("date") is not None:
            rec["date"] = str(rec["date"])
        recs[Path(row["uri"]).name] = rec
    return recs, vlm_line


def check(args) -> int:
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    tok_text = (args.model / "tokenizer.json").read_text()
    tok = load_tokenizer(tok_text)
    _, ids, vocab = tokenizer_and_ids()
    prompt = prompt_ids(tok)
    truth = [json.loads(line) for line in (args.pages / "truth.jsonl").read_text().splitlines()]
    imgs = [Image.open(args.pages / t["file"]).convert("RGB") for t in truth]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sessions = {k: ort.InferenceSession(str(args.model / "onnx" / f"{k}.onnx"), opts)
                for k in ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged")}
    model = model_from_onnx(args.model)
    t_hits, o_hits, differ, t_recs = [], [], [], {}
    for i in range(0, len(truth), 16):
        chunk = list(range(i, min(i + 16, len(truth))))
        px = np.stack([pixels(imgs[j]) for j in chunk])
        a = model.greedy(torch.from_numpy(px), torch.tensor(prompt), ids_of(ids))
        o = onnx_greedy(sessions, px, prompt, ids_of(ids))
        for j, sa, so in zip(chunk, a, o):
            rec = {k: truth[j][k] for k in SCHEMA["properties"]}
            t_recs[truth[j]["file"]] = parse_fields(tok.decode(sa[1:]))
            t_hits.append(field_hits(t_recs[truth[j]["file"]], rec))
            o_hits.append(field_hits(parse_fields(tok.decode(so[1:])), rec))
            if sa != so:
                differ.append((truth[j]["file"], tok.decode(sa[1:]), tok.decode(so[1:])))
    report = {"pages": len(truth), "torch": summarize(t_hits), "onnxruntime": summarize(o_hits),
              "token_sequences_differing": len(differ), "differing": differ[:10]}
    if args.docpipe:
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            for constrained in (False, True):
                recs, line = docpipe_fields(args.docpipe, args.pages, args.model, constrained, 8, work)
                hits = []
                for t in truth:
                    got = recs.get(t["file"])
                    hits.append(field_hits(got, {k: t[k] for k in SCHEMA["properties"]}))
                key = "docpipe_constrained" if constrained else "docpipe_unconstrained"
                report[key] = summarize(hits)
                # docpipe against the framework, page by page: the same
                # record (fields compared as in scoring), or where not.
                unlike = []
                for t in truth:
                    mine = t_recs.get(t["file"]) or {}
                    norm = {k: (str(mine.get(k)) if k != "total" else mine.get(k)) for k in SCHEMA["properties"]}
                    got = recs.get(t["file"])
                    if not all(field_hits(got, {k: norm[k] for k in SCHEMA["properties"]}).values()):
                        unlike.append({"file": t["file"], "framework": mine, "docpipe": got})
                report[key + "_pages_unlike_framework"] = len(unlike)
                report[key + "_unlike"] = unlike[:5]
                report[key + "_summary"] = line
    print(json.dumps(report, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--seed", type=int, default=TRAIN_SEED)
    t.add_argument("--steps", type=int, default=2400)
    t.add_argument("--batch", type=int, default=24)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--out", type=Path, default=OUT)
    p = sub.add_parser("pages")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--dir", type=Path, required=True)
    c = sub.add_parser("check")
    c.add_argument("--pages", type=Path, required=True)
    c.add_argument("--model", type=Path, default=OUT)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--docpipe", type=Path, help="docpipe binary: also run and score `docpipe run`")
    f = sub.add_parser("framework")
    f.add_argument("--pages", type=Path, required=True)
    f.add_argument("--model", type=Path, default=OUT)
    f.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.cmd == "pages" and args.seed == TRAIN_SEED or args.cmd == "pages" and args.seed == TRAIN_SEED + 1:
        ap.error("that seed is the training's (or its own check's); pick another")
    return {"train": train, "pages": write_pages, "check": check, "framework": framework_tokens}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
