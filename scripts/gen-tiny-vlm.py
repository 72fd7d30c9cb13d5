#!/usr/bin/env python3
"""Generate docpipe's two tiny random-weight VLM fixtures (deterministic, seeded).

How to run (from the repository root):

    python3 -m venv /work/venv-vlmgen
    /work/venv-vlmgen/bin/pip install -r scripts/requirements-vlm.txt
    /work/venv-vlmgen/bin/python scripts/gen-tiny-vlm.py            # writes fixtures/vlm/
    /work/venv-vlmgen/bin/python scripts/gen-tiny-vlm.py --verify   # writes, then checks
    /work/venv-vlmgen/bin/python scripts/gen-tiny-vlm.py --out /tmp/vlm --verify

Writes `florence2-tiny/` (encoder-decoder, Florence-2 / Optimum layout) and
`smolvlm-tiny/` (decoder-only with a vision encoder, SmolVLM / Idefics3
layout). Each folder holds fp32 ONNX graphs under `onnx/`, a byte-level BPE
`tokenizer.json` and the `docpipe.json` manifest. Graph, input and output
names, ranks and dtypes copy the public exports (shared/VLM-EXPORTS.md) with
tiny sizes and symbolic batch / sequence / past / encoder dims. The weights
are random (numpy default_rng(SEED)), so generated text is meaningless; the
graphs are real attention models with a KV cache, so cached decoding equals
uncached decoding and left padding does not change a row's logits.

Every output is a pure function of this script and the pinned versions in
scripts/requirements-vlm.txt; two runs give byte-identical files.
`--verify` checks, with onnxruntime on CPU: the I/O tables, first step with an
empty past, cached vs uncached greedy decoding (10 steps, allclose 1e-4),
left-padded batches vs single rows, Florence-2 cross-attention k/v on step 0,
and the tokenizer (round trip, every byte encodable, toktrie-compatible vocab).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20240314
OPSET = 17
IR_VERSION = 8
IMAGE = 64  # input image side, pixels
PATCH = 16  # patch side, pixels -> (64/16)^2 = 16 image tokens
N_IMG_TOKENS = (IMAGE // PATCH) ** 2
NEG = -1.0e9  # additive mask value for masked attention scores

F32 = TensorProto.FLOAT
I64 = TensorProto.INT64
BOOL = TensorProto.BOOL

# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by the ByteLevel pre-tokenizer."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_MAP = bytes_to_unicode()

# Text pieces (as they come out of the GPT-2 split regex) that get merged
# tokens: JSON punctuation, digit pairs and a few prompt / field words.
MERGE_PIECES = [
    '{"', '":', '",', '"}', ' "', '":"', '","', '":{', '":[', '"]', '},', ' {',
    "null", "true", "false",
    "00", "01", "03", "10", "12", "14", "20", "24", "50", "99",
    " 1", " 2", " 0",
    "Extract", " the", " fields", " as", " JSON", " these",
    "total", "date", "name", "type", "string", "number",
    "User", "Assistant",
]


def build_merges(pieces: list[str]) -> list[tuple[str, str]]:
    """Left-to-right merge chains so that each piece becomes one token."""
    merges: list[tuple[str, str]] = []
    known: set[str] = set(BYTE_MAP.values())
    for piece in pieces:
        chars = [BYTE_MAP[b] for b in piece.encode("utf-8")]
        cur = chars[0]
        for c in chars[1:]:
            nxt = cur + c
            if nxt not in known:
                merges.append((cur, c))
                known.add(nxt)
            cur = nxt
    return merges


def tokenizer_json(
    specials_front: list[str], specials_back: list[str], pieces: list[str] | None = None
) -> tuple[str, dict[str, int], int]:
    """Byte-level BPE tokenizer.json text; specials_front get ids 0.., the
    256 byte tokens and the merges follow, then specials_back (last ids)."""
    vocab: dict[str, int] = {}
    for s in specials_front:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab[BYTE_MAP[b]] = len(vocab)
    merges = build_merges(MERGE_PIECES if pieces is None else pieces)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    for s in specials_back:
        vocab[s] = len(vocab)
    specials = specials_front + specials_back
    added = [
        {
            "id": vocab[s],
            "content": s,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for s in specials
    ]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": None,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    return text, {s: vocab[s] for s in specials}, len(vocab)


# ---------------------------------------------------------------------------
# Graph building
# ---------------------------------------------------------------------------


class Builder:
    """Collects nodes and initializers of one graph (or If branch)."""

    def __init__(self, rng: np.random.Generator, weights: dict[str, np.ndarray], counter: list[int]):
        self.rng = rng
        self.weights = weights  # shared across a model: name -> array (for --verify)
        self.counter = counter
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def fresh(self, base: str) -> str:
        self.counter[0] += 1
        return f"{base}_{self.counter[0]}"

    def op(self, op_type: str, inputs: list[str], out: str | None = None, n_out: int = 1, **attrs):
        outs = [out] if out is not None else [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.fresh("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, arr: np.ndarray, base: str = "c") -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def i64(self, *vals: int) -> str:
        return self.const(np.array(vals, dtype=np.int64), "shape")

    def scalar_i64(self, v: int) -> str:
        return self.const(np.array(v, dtype=np.int64), "k")

    def f32(self, v: float) -> str:
        return self.const(np.array(v, dtype=np.float32), "f")

    def param(self, name: str, arr: np.ndarray) -> str:
        arr = arr.astype(np.float32)
        self.weights[name] = arr
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def normal(self, name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> str:
        return self.param(name, mean + std * self.rng.standard_normal(shape))

    # -- layers ------------------------------------------------------------

    def linear(self, x: str, name: str, n_in: int, n_out: int, out: str | None = None) -> str:
        w = self.normal(name + ".weight", (n_in, n_out), 1.0 / np.sqrt(n_in))
        b = self.normal(name + ".bias", (n_out,), 0.1)
        return self.op("Add", [self.op("MatMul", [x, w]), b], out=out)

    def layer_norm(self, x: str, name: str, dim: int, out: str | None = None) -> str:
        g = self.normal(name + ".weight", (dim,), 0.1, mean=1.0)
        b = self.normal(name + ".bias", (dim,), 0.1)
        return self.op("LayerNormalization", [x, g, b], out=out, axis=-1, epsilon=1e-5)

    def silu(self, x: str) -> str:
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def mlp(self, x: str, name: str, dim: int, hidden: int) -> str:
        h = self.silu(self.linear(x, name + ".fc1", dim, hidden))
        return self.linear(h, name + ".fc2", hidden, dim)

    def split_heads(self, x: str, heads: int, head_dim: int) -> str:
        """[b, s, heads*head_dim] -> [b, heads, s, head_dim]."""
        r = self.op("Reshape", [x, self.i64(0, 0, heads, head_dim)])
        return self.op("Transpose", [r], perm=[0, 2, 1, 3])

    def merge_heads(self, x: str, heads: int, head_dim: int) -> str:
        """[b, heads, s, head_dim] -> [b, s, heads*head_dim]."""
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.i64(0, 0, heads * head_dim)])

    def attend(self, q: str, k: str, v: str, mask: str, head_dim: int, rank: int = 4) -> str:
        """softmax(q k^T / sqrt(d) + mask) v over the last two axes."""
        perm = list(range(rank - 2)) + [rank - 1, rank - 2]
        kt = self.op("Transpose", [k], perm=perm)
        s = self.op("Mul", [self.op("MatMul", [q, kt]), self.f32(1.0 / np.sqrt(head_dim))])
        p = self.op("Softmax", [self.op("Add", [s, mask])], axis=-1)
        return self.op("MatMul", [p, v])

    def sinusoid(self, pos_f: str, dim: int) -> str:
        """Sinusoidal embedding of float positions [...] -> [..., dim]."""
        inv = (1.0 / (10000.0 ** (np.arange(0, dim, 2, dtype=np.float64) / dim))).astype(np.float32)
        ang = self.op("Mul", [self.op("Unsqueeze", [pos_f, self.i64(-1)]), self.const(inv, "inv_freq")])
        return self.op("Concat", [self.op("Sin", [ang]), self.op("Cos", [ang])], axis=-1)

    def dim(self, x: str, axis: int) -> str:
        """Scalar int64 size of axis `axis` of x."""
        return self.op("Gather", [self.op("Shape", [x]), self.scalar_i64(axis)], axis=0)

    def key_mask(self, mask_i64: str) -> str:
        """[b, T] i64 (1 keep, 0 pad) -> additive f32 [b, 1, 1, T] (0 or NEG)."""
        m = self.op("Cast", [mask_i64], to=F32)
        add = self.op("Mul", [self.op("Sub", [m, self.f32(1.0)]), self.f32(-NEG)])
        return self.op("Unsqueeze", [add, self.i64(1, 2)])

    def causal(self, past_len: str, seq_len: str) -> str:
        """bool [s, past+s]: key j visible to query i iff j <= past + i."""
        total = self.op("Add", [past_len, seq_len])
        one = self.scalar_i64(1)
        qpos = self.op("Range", [past_len, total, one])
        kpos = self.op("Range", [self.scalar_i64(0), total, one])
        return self.op(
            "Less",
            [self.op("Unsqueeze", [kpos, self.i64(0)]), self.op("Unsqueeze", [self.op("Add", [qpos, one]), self.i64(1)])],
        )

    def patch_embed(self, pixels: str, name: str, dim: int) -> str:
        """[N, 3, 64, 64] -> [N, 16, dim] (patch conv + learned positions + LN)."""
        w = self.normal(name + ".patch.weight", (dim, 3, PATCH, PATCH), 1.0 / np.sqrt(3 * PATCH * PATCH))
        b = self.normal(name + ".patch.bias", (dim,), 0.1)
        c = self.op("Conv", [pixels, w, b], kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
        t = self.op("Transpose", [self.op("Reshape", [c, self.i64(0, dim, -1)])], perm=[0, 2, 1])
        pos = self.normal(name + ".pos", (N_IMG_TOKENS, dim), 0.5)
        return self.layer_norm(self.op("Add", [t, pos]), name + ".ln", dim)


def vi(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(b: Builder, inputs, outputs, graph_name: str, doc: str) -> onnx.ModelProto:
    g = helper.make_graph(b.nodes, graph_name, inputs, outputs, initializer=b.inits, doc_string=doc)
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="docpipe scripts/gen-tiny-vlm.py",
        producer_version="1",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(m, full_check=True)
    return m


# ---------------------------------------------------------------------------
# Florence-2 tiny (encoder-decoder)
# ---------------------------------------------------------------------------

FL = {"hidden": 32, "heads": 2, "head_dim": 16, "enc_layers": 1, "dec_layers": 2, "ffn": 64}
FL_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# The manifest's graph roles of a Florence-2-layout export.
FL_GRAPHS = {
    "vision_encoder": "onnx/vision_encoder.onnx",
    "embed_tokens": "onnx/embed_tokens.onnx",
    "encoder": "onnx/encoder_model.onnx",
    "decoder": "onnx/decoder_model_merged.onnx",
}


def florence_graphs(rng: np.random.Generator, vocab: int):
    W: dict[str, np.ndarray] = {}
    ctr = [0]
    models = {}

    # vision_encoder: pixel_values [b,3,64,64] -> image_features [b,16,E]
    b = Builder(rng, W, ctr)
    x = b.patch_embed("pixel_values", "vision", FL["hidden"])
    b.linear(x, "vision.proj", FL["hidden"], FL["hidden"], out="image_features")
    models["vision_encoder"] = make_model(
        b,
        [vi("pixel_values", F32, ["batch_size", 3, IMAGE, IMAGE])],
        [vi("image_features", F32, ["batch_size", N_IMG_TOKENS, FL["hidden"]])],
        "vision_encoder",
        "Florence-2-tiny vision encoder (random weights): 16x16 patches -> 16 tokens.",
    )
    models.update(florence_text_graphs(lambda: Builder(rng, W, ctr), FL, vocab))
    return models, W


def florence_text_graphs(new_builder, cfg: dict, vocab: int, title: str = "Florence-2-tiny") -> dict:
    """The Florence-2 layout's embed_tokens, encoder_model and
    decoder_model_merged graphs for the sizes in `cfg` (hidden, heads,
    head_dim, enc_layers, dec_layers, ffn). `new_builder()` gives a Builder;
    its `normal` supplies every weight (random here, trained weights in
    scripts/train-vlm.py)."""
    E, H, D = cfg["hidden"], cfg["heads"], cfg["head_dim"]
    models = {}

    # embed_tokens: input_ids [b,s] -> inputs_embeds [b,s,E]
    b = new_builder()
    table = b.normal("embed_tokens.weight", (vocab, E), 1.0)
    b.op("Gather", [table, "input_ids"], out="inputs_embeds", axis=0)
    models["embed_tokens"] = make_model(
        b,
        [vi("input_ids", I64, ["batch_size", "sequence_length"])],
        [vi("inputs_embeds", F32, ["batch_size", "sequence_length", E])],
        "embed_tokens",
        f"{title} token embedding.",
    )

    # encoder_model: bidirectional self-attention with key padding mask;
    # positions = cumsum(mask) - 1 (pads 0), sinusoidal, so padding anywhere
    # does not change the unpadded tokens' states.
    b = new_builder()
    pos = b.op("Mul", [b.op("Sub", [b.op("CumSum", ["attention_mask", b.scalar_i64(1)]), b.scalar_i64(1)]), "attention_mask"])
    x = b.op("Add", ["inputs_embeds", b.sinusoid(b.op("Cast", [pos], to=F32), E)])
    kmask = b.key_mask("attention_mask")
    for i in range(cfg["enc_layers"]):
        p = f"encoder.layers.{i}"
        h = b.layer_norm(x, p + ".ln1", E)
        q = b.split_heads(b.linear(h, p + ".q", E, E), H, D)
        k = b.split_heads(b.linear(h, p + ".k", E, E), H, D)
        v = b.split_heads(b.linear(h, p + ".v", E, E), H, D)
        a = b.linear(b.merge_heads(b.attend(q, k, v, kmask, D), H, D), p + ".o", E, E)
        x = b.op("Add", [x, a])
        x = b.op("Add", [x, b.mlp(b.layer_norm(x, p + ".ln2", E), p + ".mlp", E, cfg["ffn"])])
    b.layer_norm(x, "encoder.ln_f", E, out="last_hidden_state")
    models["encoder_model"] = make_model(
        b,
        [
            vi("attention_mask", I64, ["batch_size", "encoder_sequence_length"]),
            vi("inputs_embeds", F32, ["batch_size", "encoder_sequence_length", E]),
        ],
        [vi("last_hidden_state", F32, ["batch_size", "encoder_sequence_length", E])],
        "encoder_model",
        f"{title} encoder: input is concat(image_features, embed(prompt)).",
    )

    # decoder_model_merged
    b = new_builder()
    past0 = "past_key_values.0.decoder.key"
    past_len = b.dim(past0, 2)
    seq_len = b.dim("inputs_embeds", 1)
    qpos = b.op("Range", [past_len, b.op("Add", [past_len, seq_len]), b.scalar_i64(1)])
    x = b.op("Add", ["inputs_embeds", b.sinusoid(b.op("Cast", [qpos], to=F32), E)])
    cmask = b.op("Where", [b.causal(past_len, seq_len), b.f32(0.0), b.f32(NEG)])
    xmask = b.key_mask("encoder_attention_mask")
    for i in range(cfg["dec_layers"]):
        p = f"decoder.layers.{i}"
        pk = f"past_key_values.{i}"
        h = b.layer_norm(x, p + ".ln1", E)
        q = b.split_heads(b.linear(h, p + ".self.q", E, E), H, D)
        k = b.split_heads(b.linear(h, p + ".self.k", E, E), H, D)
        v = b.split_heads(b.linear(h, p + ".self.v", E, E), H, D)
        kc = b.op("Concat", [pk + ".decoder.key", k], out=f"present.{i}.decoder.key", axis=2)
        vc = b.op("Concat", [pk + ".decoder.value", v], out=f"present.{i}.decoder.value", axis=2)
        a = b.linear(b.merge_heads(b.attend(q, kc, vc, cmask, D), H, D), p + ".self.o", E, E)
        x = b.op("Add", [x, a])

        # cross attention; k/v from encoder_hidden_states on the first step
        # (use_cache_branch false), from the past on later steps.
        h = b.layer_norm(x, p + ".ln2", E)
        q = b.split_heads(b.linear(h, p + ".cross.q", E, E), H, D)
        wk = b.normal(p + ".cross.k.weight", (E, E), 1.0 / np.sqrt(E))
        bk = b.normal(p + ".cross.k.bias", (E,), 0.1)
        wv = b.normal(p + ".cross.v.weight", (E, E), 1.0 / np.sqrt(E))
        bv = b.normal(p + ".cross.v.bias", (E,), 0.1)
        # then-branch (with cache): reuse past encoder k/v; present.encoder.* is
        # an empty placeholder [b, H, 0, D] (Optimum's merged layout).
        tb = new_builder()
        t_k = tb.op("Identity", [pk + ".encoder.key"])
        t_v = tb.op("Identity", [pk + ".encoder.value"])
        z, zz, ax = tb.i64(0), tb.i64(0), tb.i64(2)
        t_pk = tb.op("Slice", [pk + ".encoder.key", z, zz, ax])
        t_pv = tb.op("Slice", [pk + ".encoder.value", z, zz, ax])
        # else-branch (first step): project encoder_hidden_states.
        eb = new_builder()
        e_k = eb.split_heads(eb.op("Add", [eb.op("MatMul", ["encoder_hidden_states", wk]), bk]), H, D)
        e_v = eb.split_heads(eb.op("Add", [eb.op("MatMul", ["encoder_hidden_states", wv]), bv]), H, D)
        e_pk = eb.op("Identity", [e_k])
        e_pv = eb.op("Identity", [e_v])
        outs_t = [vi(n, F32, None) for n in (t_k, t_v, t_pk, t_pv)]
        outs_e = [vi(n, F32, None) for n in (e_k, e_v, e_pk, e_pv)]
        then_g = helper.make_graph(tb.nodes, f"use_cache_{i}", [], outs_t, initializer=tb.inits)
        else_g = helper.make_graph(eb.nodes, f"no_cache_{i}", [], outs_e, initializer=eb.inits)
        ck, cv = b.fresh("cross_k"), b.fresh("cross_v")
        b.nodes.append(
            helper.make_node(
                "If",
                ["use_cache_branch"],
                [ck, cv, f"present.{i}.encoder.key", f"present.{i}.encoder.value"],
                name=b.fresh("n_If"),
                then_branch=then_g,
                else_branch=else_g,
            )
        )
        a = b.linear(b.merge_heads(b.attend(q, ck, cv, xmask, D), H, D), p + ".cross.o", E, E)
        x = b.op("Add", [x, a])
        x = b.op("Add", [x, b.mlp(b.layer_norm(x, p + ".ln3", E), p + ".mlp", E, cfg["ffn"])])
    h = b.layer_norm(x, "decoder.ln_f", E)
    lm_w = b.normal("lm_head.weight", (E, vocab), 1.0 / np.sqrt(E))
    lm_b = b.normal("lm_head.bias", (vocab,), 0.5)
    b.op("Add", [b.op("MatMul", [h, lm_w]), lm_b], out="logits")

    ins = [
        vi("encoder_attention_mask", I64, ["batch_size", "encoder_sequence_length"]),
        vi("encoder_hidden_states", F32, ["batch_size", "encoder_sequence_length", E]),
        vi("inputs_embeds", F32, ["batch_size", "decoder_sequence_length", E]),
    ]
    outs = [vi("logits", F32, ["batch_size", "decoder_sequence_length", vocab])]
    for i in range(cfg["dec_layers"]):
        for kv in ("key", "value"):
            ins.append(vi(f"past_key_values.{i}.decoder.{kv}", F32, ["batch_size", H, "past_decoder_sequence_length", D]))
        for kv in ("key", "value"):
            ins.append(vi(f"past_key_values.{i}.encoder.{kv}", F32, ["batch_size", H, "encoder_sequence_length_out", D]))
        for kv in ("key", "value"):
            outs.append(
                vi(f"present.{i}.decoder.{kv}", F32, ["batch_size", H, "past_decoder_sequence_length + 1", D])
            )
        for kv in ("key", "value"):
            outs.append(vi(f"present.{i}.encoder.{kv}", F32, ["batch_size", H, "encoder_sequence_length_out", D]))
    ins.append(vi("use_cache_branch", BOOL, [1]))
    models["decoder_model_merged"] = make_model(
        b,
        ins,
        outs,
        "decoder_model_merged",
        f"{title} merged decoder. use_cache_branch=false: cross k/v from "
        "encoder_hidden_states, present.*.encoder.* = those k/v. true: cross k/v "
        "from past_key_values.*.encoder.*, present.*.encoder.* = empty [b,H,0,D].",
    )
    return models


# ---------------------------------------------------------------------------
# SmolVLM tiny (decoder-only)
# ---------------------------------------------------------------------------

SV = {"hidden": 64, "heads": 4, "kv_heads": 2, "head_dim": 16, "layers": 2, "ffn": 128, "vision_hidden": 32}
SV_FRONT = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SV_BACK = (
    ["<global-img>"]
    + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    + ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
)


def smolvlm_graphs(rng: np.random.Generator, vocab: int):
    E, H, KV, D, Ev = SV["hidden"], SV["heads"], SV["kv_heads"], SV["head_dim"], SV["vision_hidden"]
    rep = H // KV
    W: dict[str, np.ndarray] = {}
    ctr = [0]
    models = {}

    # vision_encoder: pixel_values [b,n,3,64,64], pixel_attention_mask bool
    # [b,n,64,64] -> image_features [n_real,16,E]; an image is real when any
    # of its mask pixels is true; masked pixels are zeroed before the patches.
    b = Builder(rng, W, ctr)
    pv = b.op("Reshape", ["pixel_values", b.i64(-1, 3, IMAGE, IMAGE)])
    m = b.op("Reshape", [b.op("Cast", ["pixel_attention_mask"], to=F32), b.i64(-1, 1, IMAGE, IMAGE)])
    x = b.patch_embed(b.op("Mul", [pv, m]), "vision", Ev)
    x = b.op("Add", [x, b.mlp(x, "vision.mlp", Ev, 2 * Ev)])
    feats = b.linear(x, "connector", Ev, E)
    real = b.op("Greater", [b.op("ReduceMax", [m], axes=[1, 2, 3], keepdims=0), b.f32(0.0)])
    b.op("Compress", [feats, real], out="image_features", axis=0)
    models["vision_encoder"] = make_model(
        b,
        [
            vi("pixel_values", F32, ["batch_size", "num_images", 3, IMAGE, IMAGE]),
            vi("pixel_attention_mask", BOOL, ["batch_size", "num_images", IMAGE, IMAGE]),
        ],
        [vi("image_features", F32, ["num_real_images", N_IMG_TOKENS, E])],
        "vision_encoder",
        "SmolVLM-tiny vision encoder (random weights): 16 tokens per 64x64 image.",
    )

    b = Builder(rng, W, ctr)
    table = b.normal("embed_tokens.weight", (vocab, E), 1.0)
    b.op("Gather", [table, "input_ids"], out="inputs_embeds", axis=0)
    models["embed_tokens"] = make_model(
        b,
        [vi("input_ids", I64, ["batch_size", "sequence_length"])],
        [vi("inputs_embeds", F32, ["batch_size", "sequence_length", E])],
        "embed_tokens",
        "SmolVLM-tiny token embedding.",
    )

    # decoder_model_merged: causal GQA self-attention with KV cache; absolute
    # sinusoidal positions from position_ids; keys masked by attention_mask.
    b = Builder(rng, W, ctr)
    past_len = b.dim("past_key_values.0.key", 2)
    seq_len = b.dim("inputs_embeds", 1)
    x = b.op("Add", ["inputs_embeds", b.sinusoid(b.op("Cast", ["position_ids"], to=F32), E)])
    keep = b.op(
        "And",
        [
            b.causal(past_len, seq_len),  # [s, T]
            b.op("Unsqueeze", [b.op("Cast", ["attention_mask"], to=BOOL), b.i64(1, 2)]),  # [b,1,1,T]
        ],
    )  # [b,1,s,T]
    mask = b.op("Unsqueeze", [b.op("Where", [keep, b.f32(0.0), b.f32(NEG)]), b.i64(1)])  # [b,1,1,s,T]
    for i in range(SV["layers"]):
        p = f"model.layers.{i}"
        h = b.layer_norm(x, p + ".ln1", E)
        q = b.split_heads(b.linear(h, p + ".q", E, H * D), H, D)  # [b,H,s,D]
        k = b.split_heads(b.linear(h, p + ".k", E, KV * D), KV, D)
        v = b.split_heads(b.linear(h, p + ".v", E, KV * D), KV, D)
        kc = b.op("Concat", [f"past_key_values.{i}.key", k], out=f"present.{i}.key", axis=2)
        vc = b.op("Concat", [f"past_key_values.{i}.value", v], out=f"present.{i}.value", axis=2)
        q5 = b.op("Reshape", [q, b.i64(0, KV, rep, -1, D)])  # head h uses kv head h // rep
        k5 = b.op("Unsqueeze", [kc, b.i64(2)])
        v5 = b.op("Unsqueeze", [vc, b.i64(2)])
        o = b.op("Reshape", [b.attend(q5, k5, v5, mask, D, rank=5), b.i64(0, H, -1, D)])
        x = b.op("Add", [x, b.linear(b.merge_heads(o, H, D), p + ".o", H * D, E)])
        x = b.op("Add", [x, b.mlp(b.layer_norm(x, p + ".ln2", E), p + ".mlp", E, SV["ffn"])])
    h = b.layer_norm(x, "model.norm", E)
    lm_w = b.normal("lm_head.weight", (E, vocab), 1.0 / np.sqrt(E))
    lm_b = b.normal("lm_head.bias", (vocab,), 0.5)
    b.op("Add", [b.op("MatMul", [h, lm_w]), lm_b], out="logits")
    ins = [
        vi("inputs_embeds", F32, ["batch_size", "sequence_length", E]),
        vi("attention_mask", I64, ["batch_size", "total_sequence_length"]),
        vi("position_ids", I64, ["batch_size", "sequence_length"]),
    ]
    outs = [vi("logits", F32, ["batch_size", "sequence_length", vocab])]
    for i in range(SV["layers"]):
        for kv in ("key", "value"):
            ins.append(vi(f"past_key_values.{i}.{kv}", F32, ["batch_size", KV, "past_sequence_length", D]))
            outs.append(vi(f"present.{i}.{kv}", F32, ["batch_size", KV, "total_sequence_length", D]))
    models["decoder_model_merged"] = make_model(
        b, ins, outs, "decoder_model_merged", "SmolVLM-tiny decoder with KV cache (past may be empty)."
    )
    return models, W


# ---------------------------------------------------------------------------
# Manifests and writing
# ---------------------------------------------------------------------------

FL_NOTES = (
    "Tiny random-weight test model; generated text is meaningless. "
    "Encoder input: concat(image_features, embed(prompt_ids)) on the sequence axis, "
    "mask concat(ones(image_tokens), prompt_mask); the same mask is the decoder's "
    "encoder_attention_mask. Decoding: start with decoder_start (2); force forced_bos (0) "
    "as the first generated token; stop on eos (2). Step 0: use_cache_branch=false, every "
    "past_key_values.* has 0 on axis 2; present.*.encoder.* are the cross-attention k/v. "
    "Later steps: use_cache_branch=true, feed the newest token only, past decoder k/v = "
    "previous present.*.decoder.*, past encoder k/v = the STEP-0 present.*.encoder.*; on these "
    "steps present.*.encoder.* come back EMPTY ([b,heads,0,head_dim], Optimum's placeholder), "
    "so keep the step-0 values. Tokenizer has no post-processor: the prompt template carries "
    "<s>/</s>, encode with add_special_tokens=false."
)
SV_NOTES = (
    "Tiny random-weight test model; generated text is meaningless. Image: one 64x64 "
    "global image (tiles=false), expanded in the prompt as <fake_token_around_image>"
    "<global-img> + image_tokens x <image> + <fake_token_around_image>; the <image> "
    "embeddings are replaced in order by image_features rows. vision_encoder keeps an "
    "image when any pixel_attention_mask value is true. Decoder: attention_mask [b,past+s], "
    "position_ids = cumsum(mask)-1 (pads any value), past_key_values.* with 0 on axis 2 on "
    "the first step; present.* become the next past. Stop on eos (<end_of_utterance>). "
    "Tokenizer has no post-processor: encode the template with add_special_tokens=false."
)


def build_all() -> dict[str, dict[str, bytes]]:
    """Returns {folder: {relative path: bytes}} plus in-memory weights for verify."""
    rng = np.random.default_rng(SEED)
    out: dict[str, dict[str, bytes]] = {}

    tok_text, fl_ids, fl_vocab = tokenizer_json(FL_SPECIALS, [])
    fl_models, _ = florence_graphs(rng, fl_vocab)
    manifest = {
        "format": "docpipe-vlm/1",
        "architecture": "encoder-decoder",
        "family": "florence2",
        "graphs": dict(FL_GRAPHS),
        "image": {
            "size": [IMAGE, IMAGE],
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "resample": "bicubic",
            "tiles": False,
            "image_tokens": N_IMG_TOKENS,
        },
        "prompt": "<s>Extract the fields as JSON: {schema}</s>",
        "tokens": {
            "bos": fl_ids["<s>"],
            "pad": fl_ids["<pad>"],
            "eos": fl_ids["</s>"],
            "unk": fl_ids["<unk>"],
            "decoder_start": fl_ids["</s>"],
            "forced_bos": fl_ids["<s>"],
        },
        "decoder": {"layers": FL["dec_layers"], "kv_heads": FL["heads"], "head_dim": FL["head_dim"], "hidden": FL["hidden"]},
        "encoder": {"layers": FL["enc_layers"], "heads": FL["heads"], "head_dim": FL["head_dim"]},
        # Florence-2's task prompts are built in (family florence2); the tiny
        # tokenizer has no <loc_N> tokens, so coordinates are spelt out.
        "tasks": ["fields", "caption", "detailed_caption", "ocr_with_region", "od"],
        "vocab_size": fl_vocab,
        "notes": FL_NOTES,
    }
    files = {f"onnx/{k}.onnx": v.SerializeToString() for k, v in fl_models.items()}
    files["tokenizer.json"] = tok_text.encode("utf-8")
    files["docpipe.json"] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    out["florence2-tiny"] = files

    tok_text, sv_ids, sv_vocab = tokenizer_json(SV_FRONT, SV_BACK)
    sv_models, _ = smolvlm_graphs(rng, sv_vocab)
    manifest = {
        "format": "docpipe-vlm/1",
        "architecture": "decoder-only",
        "family": "smolvlm",
        "graphs": {
            "vision_encoder": "onnx/vision_encoder.onnx",
            "embed_tokens": "onnx/embed_tokens.onnx",
            "decoder": "onnx/decoder_model_merged.onnx",
        },
        "image": {
            "size": [IMAGE, IMAGE],
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "resample": "lanczos",
            "tiles": False,
            "image_tokens": N_IMG_TOKENS,
        },
        "prompt": "<|im_start|>User:<image>{question}<end_of_utterance>\nAssistant:",
        "question": "Extract these fields as JSON: {schema}",
        "tokens": {
            "bos": sv_ids["<|im_start|>"],
            "pad": sv_ids["<|im_end|>"],
            "eos": sv_ids["<end_of_utterance>"],
            "endoftext": sv_ids["<|endoftext|>"],
            "im_start": sv_ids["<|im_start|>"],
            "image": sv_ids["<image>"],
            "fake_token_around_image": sv_ids["<fake_token_around_image>"],
            "global_img": sv_ids["<global-img>"],
            "row_1_col_1": sv_ids["<row_1_col_1>"],
            "end_of_utterance": sv_ids["<end_of_utterance>"],
        },
        "decoder": {"layers": SV["layers"], "kv_heads": SV["kv_heads"], "head_dim": SV["head_dim"], "hidden": SV["hidden"]},
        # A decoder-only export names a question per task; boxes come back in
        # Florence-2's notation, <loc_N> spelt out (0..999 of width/height).
        "tasks": ["fields", "caption", "detailed_caption", "ocr_with_region", "od"],
        "task_prompts": {
            "caption": "Describe this page in one sentence.",
            "detailed_caption": "Describe this page in detail.",
            "ocr_with_region": "Read the text lines, each followed by its four corners as <loc_x><loc_y> in thousandths of the width and height.",
            "od": "List the objects, each label followed by its box as <loc_x0><loc_y0><loc_x1><loc_y1> in thousandths of the width and height.",
        },
        "vocab_size": sv_vocab,
        "notes": SV_NOTES,
    }
    files = {f"onnx/{k}.onnx": v.SerializeToString() for k, v in sv_models.items()}
    files["tokenizer.json"] = tok_text.encode("utf-8")
    files["docpipe.json"] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    out["smolvlm-tiny"] = files
    return out


def write_all(root: Path, built: dict[str, dict[str, bytes]]) -> None:
    for folder, files in built.items():
        for rel, data in sorted(files.items()):
            p = root / folder / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------


class Check:
    def __init__(self):
        self.n = 0

    def ok(self, cond: bool, what: str) -> None:
        self.n += 1
        if not cond:
            raise SystemExit(f"VERIFY FAILED: {what}")


def verify(root: Path) -> None:
    # Imported here so that generation alone does not need them.
    import onnxruntime as ort
    from tokenizers import Tokenizer

    chk = Check()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3

    def sess(folder: str, graph: str):
        return ort.InferenceSession(str(root / folder / "onnx" / f"{graph}.onnx"), so, providers=["CPUExecutionProvider"])

    type_names = {F32: "tensor(float)", I64: "tensor(int64)", BOOL: "tensor(bool)"}

    def check_io(s, folder, graph, want_in, want_out):
        got_in = [(a.name, a.type, a.shape) for a in s.get_inputs()]
        got_out = [(a.name, a.type, a.shape) for a in s.get_outputs()]
        for got, want, kind in ((got_in, want_in, "inputs"), (got_out, want_out, "outputs")):
            exp = [(n, type_names[t], shp) for n, t, shp in want]
            chk.ok(got == exp, f"{folder}/{graph} {kind}:\n got  {got}\n want {exp}")

    # ---- tokenizers -------------------------------------------------------
    char_map = set(BYTE_MAP.values())
    sample = '{"total": 12.50, "date": "2024-03-14"}'
    for folder in ("florence2-tiny", "smolvlm-tiny"):
        tok = Tokenizer.from_file(str(root / folder / "tokenizer.json"))
        man = json.loads((root / folder / "docpipe.json").read_text())
        V = tok.get_vocab_size(with_added_tokens=True)
        chk.ok(V == man["vocab_size"] and 300 <= V <= 400, f"{folder} vocab size {V}")
        for text in (sample, '{"name":"ACME","items":[1,2,3],"ok":true,"x":null}', "naïve € 😀 \t\n\x00\x7f ü"):
            enc = tok.encode(text, add_special_tokens=False)
            chk.ok(tok.decode(enc.ids, skip_special_tokens=False) == text, f"{folder} round trip {text!r}")
        ids = tok.encode(sample, add_special_tokens=False).ids
        chk.ok(len(ids) < len(sample.encode()), f"{folder} merges unused: {len(ids)} tokens")
        # every byte has its own token, and every non-special token is bytes
        vocab = tok.get_vocab(with_added_tokens=True)
        for b in range(256):
            chk.ok(BYTE_MAP[b] in vocab, f"{folder} byte {b} missing")
        specials = {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special}
        for i in range(V):  # toktrie ByteTokenizer: contiguous ids, byte-level chars only
            t = tok.id_to_token(i)
            chk.ok(t is not None, f"{folder} id {i} has no token")
            chk.ok(t in specials or all(c in char_map for c in t), f"{folder} token {t!r} not byte-level")
        for name, tid in man["tokens"].items():
            chk.ok(0 <= tid < V and tok.id_to_token(tid) in specials, f"{folder} token {name}={tid}")
        # specials in the template are recognised as single tokens
        for s, i in specials.items():
            chk.ok(tok.encode("a" + s + "b", add_special_tokens=False).ids[1] == i, f"{folder} special {s}")
        tj = json.loads((root / folder / "tokenizer.json").read_text())
        chk.ok(tj["decoder"]["type"] == "ByteLevel" and tj["pre_tokenizer"]["type"] == "ByteLevel", "ByteLevel")

    rng = np.random.default_rng(7)

    # ---- Florence-2 -------------------------------------------------------
    F = "florence2-tiny"
    man = json.loads((root / F / "docpipe.json").read_text())
    tok = Tokenizer.from_file(str(root / F / "tokenizer.json"))
    E, H, D, L = FL["hidden"], FL["heads"], FL["head_dim"], FL["dec_layers"]
    V = man["vocab_size"]
    vis, emb, enc, dec = (sess(F, g) for g in ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged"))
    check_io(vis, F, "vision_encoder", [("pixel_values", F32, ["batch_size", 3, 64, 64])],
             [("image_features", F32, ["batch_size", 16, E])])
    check_io(emb, F, "embed_tokens", [("input_ids", I64, ["batch_size", "sequence_length"])],
             [("inputs_embeds", F32, ["batch_size", "sequence_length", E])])
    check_io(enc, F, "encoder_model",
             [("attention_mask", I64, ["batch_size", "encoder_sequence_length"]),
              ("inputs_embeds", F32, ["batch_size", "encoder_sequence_length", E])],
             [("last_hidden_state", F32, ["batch_size", "encoder_sequence_length", E])])
    want_in = [("encoder_attention_mask", I64, ["batch_size", "encoder_sequence_length"]),
               ("encoder_hidden_states", F32, ["batch_size", "encoder_sequence_length", E]),
               ("inputs_embeds", F32, ["batch_size", "decoder_sequence_length", E])]
    want_out = [("logits", F32, ["batch_size", "decoder_sequence_length", V])]
    for i in range(L):
        want_in += [(f"past_key_values.{i}.decoder.{kv}", F32, ["batch_size", H, "past_decoder_sequence_length", D]) for kv in ("key", "value")]
        want_in += [(f"past_key_values.{i}.encoder.{kv}", F32, ["batch_size", H, "encoder_sequence_length_out", D]) for kv in ("key", "value")]
        want_out += [(f"present.{i}.decoder.{kv}", F32, ["batch_size", H, "past_decoder_sequence_length + 1", D]) for kv in ("key", "value")]
        want_out += [(f"present.{i}.encoder.{kv}", F32, ["batch_size", H, "encoder_sequence_length_out", D]) for kv in ("key", "value")]
    want_in.append(("use_cache_branch", BOOL, [1]))
    check_io(dec, F, "decoder_model_merged", want_in, want_out)

    def embed(ids_2d):
        return emb.run(None, {"input_ids": np.asarray(ids_2d, dtype=np.int64)})[0]

    def encode_fl(pixels, prompt_ids_2d, prompt_mask_2d):
        feats = vis.run(None, {"pixel_values": pixels})[0]
        x = np.concatenate([feats, embed(prompt_ids_2d)], axis=1)
        m = np.concatenate([np.ones((x.shape[0], feats.shape[1]), np.int64), np.asarray(prompt_mask_2d, np.int64)], axis=1)
        return enc.run(None, {"attention_mask": m, "inputs_embeds": x})[0], m

    def fl_step(ehs, emask, dec_ids, past, use_cache):
        b = ehs.shape[0]
        feed = {"encoder_attention_mask": emask, "encoder_hidden_states": ehs,
                "inputs_embeds": embed(dec_ids), "use_cache_branch": np.array([use_cache])}
        for i in range(L):
            for part in ("decoder", "encoder"):
                for kv in ("key", "value"):
                    n = f"past_key_values.{i}.{part}.{kv}"
                    feed[n] = past[n] if past else np.zeros((b, H, 0, D), np.float32)
        names = [o.name for o in dec.get_outputs()]
        return dict(zip(names, dec.run(None, feed)))

    def fl_greedy(ehs, emask, steps):
        """Cached greedy decoding; returns tokens and per-step last logits, and
        checks each step against an uncached full run."""
        b = ehs.shape[0]
        toks = np.full((b, 1), man["tokens"]["decoder_start"], np.int64)
        out = fl_step(ehs, emask, toks, None, False)
        enc_kv = {}
        for i in range(L):
            for kv in ("key", "value"):
                enc_kv[f"past_key_values.{i}.encoder.{kv}"] = out[f"present.{i}.encoder.{kv}"]
        logits_seq = [out["logits"][:, -1]]
        past = None
        for step in range(steps):
            if step == 0:
                nxt = np.full((b,), man["tokens"]["forced_bos"], np.int64)
            else:
                nxt = out["logits"][:, -1].argmax(-1)
            past = {f"past_key_values.{i}.decoder.{kv}": out[f"present.{i}.decoder.{kv}"] for i in range(L) for kv in ("key", "value")}
            past.update(enc_kv)
            toks = np.concatenate([toks, nxt[:, None]], axis=1)
            out = fl_step(ehs, emask, toks[:, -1:], past, True)
            for i in range(L):
                for kv in ("key", "value"):
                    pe = out[f"present.{i}.encoder.{kv}"]
                    chk.ok(pe.shape == (b, H, 0, D), f"florence present.encoder after step 0 shape {pe.shape}")
            full = fl_step(ehs, emask, toks, None, False)
            chk.ok(np.allclose(full["logits"][:, -1], out["logits"][:, -1], atol=1e-4, rtol=1e-4),
                   f"florence cached vs full logits step {step}: {np.abs(full['logits'][:, -1] - out['logits'][:, -1]).max()}")
            logits_seq.append(out["logits"][:, -1])
        return toks, np.stack(logits_seq, 1)

    pix = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    p_long = tok.encode(man["prompt"].replace("{schema}", '{"total":"number","date":"string"}'), add_special_tokens=False).ids
    p_short = tok.encode(man["prompt"].replace("{schema}", '{"name":"string"}'), add_special_tokens=False).ids
    chk.ok(p_long[0] == 0 and p_long[-1] == 2, "florence prompt specials")
    # single rows
    singles = []
    for r, p in enumerate((p_long, p_short)):
        ehs, m = encode_fl(pix[r : r + 1], [p], [[1] * len(p)])
        # step-0 present.encoder equals the cross-attention projection
        out = fl_step(ehs, m, [[2]], None, False)
        Wt = _florence_weights()
        for i in range(L):
            for kv, short in (("key", "k"), ("value", "v")):
                w = Wt[f"decoder.layers.{i}.cross.{short}.weight"]
                bb = Wt[f"decoder.layers.{i}.cross.{short}.bias"]
                ref = (ehs @ w + bb).reshape(1, -1, H, D).transpose(0, 2, 1, 3)
                chk.ok(np.allclose(out[f"present.{i}.encoder.{kv}"], ref, atol=1e-4), f"florence cross {kv} layer {i}")
        toks, lg = fl_greedy(ehs, m, 10)
        singles.append((toks, lg))
    # left-padded batch
    n = max(len(p_long), len(p_short))
    ids = [[1] * (n - len(p)) + p for p in (p_long, p_short)]
    msk = [[0] * (n - len(p)) + [1] * len(p) for p in (p_long, p_short)]
    ehs, m = encode_fl(pix, ids, msk)
    toks, lg = fl_greedy(ehs, m, 10)
    for r in range(2):
        chk.ok(np.array_equal(toks[r], singles[r][0][0]), f"florence padded tokens row {r}")
        chk.ok(np.allclose(lg[r], singles[r][1][0], atol=1e-4, rtol=1e-4),
               f"florence padded logits row {r}: {np.abs(lg[r] - singles[r][1][0]).max()}")
    fl_ids = [int(t) for t in singles[0][0][0]]
    fl_text = tok.decode(fl_ids)
    # logits not degenerate: top-2 gap on every step
    top2 = np.sort(singles[0][1][0], -1)[:, -2:]
    chk.ok(np.all(top2[:, 1] - top2[:, 0] > 1e-3), "florence argmax ties")

    # ---- SmolVLM ----------------------------------------------------------
    S = "smolvlm-tiny"
    man = json.loads((root / S / "docpipe.json").read_text())
    tok = Tokenizer.from_file(str(root / S / "tokenizer.json"))
    E, KV, D, L = SV["hidden"], SV["kv_heads"], SV["head_dim"], SV["layers"]
    V = man["vocab_size"]
    T = man["tokens"]
    vis, emb, dec = (sess(S, g) for g in ("vision_encoder", "embed_tokens", "decoder_model_merged"))
    check_io(vis, S, "vision_encoder",
             [("pixel_values", F32, ["batch_size", "num_images", 3, 64, 64]),
              ("pixel_attention_mask", BOOL, ["batch_size", "num_images", 64, 64])],
             [("image_features", F32, ["num_real_images", 16, E])])
    check_io(emb, S, "embed_tokens", [("input_ids", I64, ["batch_size", "sequence_length"])],
             [("inputs_embeds", F32, ["batch_size", "sequence_length", E])])
    want_in = [("inputs_embeds", F32, ["batch_size", "sequence_length", E]),
               ("attention_mask", I64, ["batch_size", "total_sequence_length"]),
               ("position_ids", I64, ["batch_size", "sequence_length"])]
    want_out = [("logits", F32, ["batch_size", "sequence_length", V])]
    for i in range(L):
        for kv in ("key", "value"):
            want_in.append((f"past_key_values.{i}.{kv}", F32, ["batch_size", KV, "past_sequence_length", D]))
            want_out.append((f"present.{i}.{kv}", F32, ["batch_size", KV, "total_sequence_length", D]))
    check_io(dec, S, "decoder_model_merged", want_in, want_out)

    def embed(ids_2d):  # noqa: F811 (SmolVLM's)
        return emb.run(None, {"input_ids": np.asarray(ids_2d, dtype=np.int64)})[0]

    pix = rng.standard_normal((2, 2, 3, 64, 64)).astype(np.float32)
    pmask = np.ones((2, 2, 64, 64), bool)
    pmask[1, 1] = False  # row 1's second image is padding
    pmask[0, 1, 32:] = False  # row 0's second image half padded
    feats = vis.run(None, {"pixel_values": pix, "pixel_attention_mask": pmask})[0]
    chk.ok(feats.shape == (3, 16, E), f"smolvlm n_real_img {feats.shape}")
    one = vis.run(None, {"pixel_values": pix[1:2, :1], "pixel_attention_mask": pmask[1:2, :1]})[0]
    chk.ok(np.allclose(one[0], feats[2], atol=1e-5), "smolvlm vision per-image")

    def prompt_ids(question):
        expanded = ("<fake_token_around_image><global-img>" + "<image>" * man["image"]["image_tokens"]
                    + "<fake_token_around_image>")
        text = man["prompt"].replace("<image>", expanded, 1).replace("{question}", question)
        return tok.encode(text, add_special_tokens=False).ids

    def sv_embeds(ids_row, img_feats):
        x = embed([ids_row])[0]
        pos = [j for j, t in enumerate(ids_row) if t == T["image"]]
        assert len(pos) == img_feats.shape[0]
        x[pos] = img_feats
        return x

    def sv_step(x, mask, pos_ids, past):
        b = x.shape[0]
        feed = {"inputs_embeds": x, "attention_mask": np.asarray(mask, np.int64), "position_ids": np.asarray(pos_ids, np.int64)}
        for i in range(L):
            for kv in ("key", "value"):
                n = f"past_key_values.{i}.{kv}"
                feed[n] = past[n] if past else np.zeros((b, KV, 0, D), np.float32)
        names = [o.name for o in dec.get_outputs()]
        return dict(zip(names, dec.run(None, feed)))

    def sv_greedy(x, mask, steps):
        b = x.shape[0]
        mask = np.asarray(mask, np.int64)
        pos = np.maximum(np.cumsum(mask, 1) - 1, 0)
        out = sv_step(x, mask, pos, None)
        xs, toks, lgs = x, [], [out["logits"][:, -1]]
        for step in range(steps):
            nxt = out["logits"][:, -1].argmax(-1)
            toks.append(nxt)
            e = embed(nxt[:, None])
            mask = np.concatenate([mask, np.ones((b, 1), np.int64)], 1)
            pos_new = pos[:, -1:] + 1
            pos = np.concatenate([pos, pos_new], 1)
            past = {f"past_key_values.{i}.{kv}": out[f"present.{i}.{kv}"] for i in range(L) for kv in ("key", "value")}
            out = sv_step(e, mask, pos_new, past)
            chk.ok(out["present.0.key"].shape == (b, KV, mask.shape[1], D), "smolvlm present shape")
            xs = np.concatenate([xs, e], 1)
            full = sv_step(xs, mask, pos, None)
            chk.ok(np.allclose(full["logits"][:, -1], out["logits"][:, -1], atol=1e-4, rtol=1e-4),
                   f"smolvlm cached vs full step {step}: {np.abs(full['logits'][:, -1] - out['logits'][:, -1]).max()}")
            lgs.append(out["logits"][:, -1])
        return np.stack(toks, 1), np.stack(lgs, 1)

    q_long = prompt_ids(man["question"].replace("{schema}", '{"total":"number","date":"string"}'))
    q_short = prompt_ids(man["question"].replace("{schema}", '{"name":"string"}'))
    chk.ok(q_long[0] == T["im_start"] and q_long.count(T["image"]) == 16, "smolvlm prompt specials")
    img = vis.run(None, {"pixel_values": pix[:, :1], "pixel_attention_mask": np.ones((2, 1, 64, 64), bool)})[0]
    singles = []
    for r, q in enumerate((q_long, q_short)):
        x = sv_embeds(q, img[r])[None]
        singles.append(sv_greedy(x, [[1] * len(q)], 10))
    n = max(len(q_long), len(q_short))
    xs = np.zeros((2, n, E), np.float32)
    msk = np.zeros((2, n), np.int64)
    for r, q in enumerate((q_long, q_short)):
        pad = n - len(q)
        xs[r, :pad] = embed([[T["pad"]] * pad])[0] if pad else 0
        xs[r, pad:] = sv_embeds(q, img[r])
        msk[r, pad:] = 1
    toks, lg = sv_greedy(xs, msk, 10)
    for r in range(2):
        chk.ok(np.array_equal(toks[r], singles[r][0][0]), f"smolvlm padded tokens row {r}")
        chk.ok(np.allclose(lg[r], singles[r][1][0], atol=1e-4, rtol=1e-4),
               f"smolvlm padded logits row {r}: {np.abs(lg[r] - singles[r][1][0]).max()}")
    top2 = np.sort(singles[0][1][0], -1)[:, -2:]
    chk.ok(np.all(top2[:, 1] - top2[:, 0] > 1e-3), "smolvlm argmax ties")
    sv_ids = [int(t) for t in singles[0][0][0]]
    sv_text = tok.decode(sv_ids)
    print(f"verify: {chk.n} checks passed")
    print(f"  florence2-tiny greedy ids {fl_ids} -> {fl_text!r}")
    print(f"  smolvlm-tiny greedy ids {sv_ids} -> {sv_text!r}")


def _florence_weights() -> dict[str, np.ndarray]:
    """Rebuilds Florence-2's weights in memory (same seed, same order)."""
    rng = np.random.default_rng(SEED)
    _, _, vocab = tokenizer_json(FL_SPECIALS, [])
    return florence_graphs(rng, vocab)[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures" / "vlm")
    ap.add_argument("--verify", action="store_true", help="check the written models with onnxruntime")
    args = ap.parse_args()
    built = build_all()
    write_all(args.out, built)
    for folder, files in built.items():
        for rel, data in sorted(files.items()):
            print(f"{len(data):>9}  {folder}/{rel}")
    if args.verify:
        verify(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
