#!/usr/bin/env python3
"""Derive faster variants of docpipe's PaddleOCR ONNX models.

Run by docpipe at model-fetch time with PYTHONPATH set to an environment
installed from scripts/derive-requirements.txt (onnx, onnxruntime, numpy and
their run-time dependencies only).

  derive-ocr-model.py rec --src SRC.onnx --out OUT.onnx [--charset latin|full]
                          [--int8 --calib DIR]
  derive-ocr-model.py det --src SRC.onnx --out OUT.onnx --int8 --calib DIR
  derive-ocr-model.py cls --src SRC.onnx --out OUT.onnx --int8 --calib DIR

--charset latin  keeps, in the recogniser's classification head, the CTC blank
                 (class 0), the dictionary lines made of Latin-script
                 characters, and the trailing space class; the metadata
                 `character` is rewritten to the kept lines.
--int8           converts to opset 17, then QDQ static quantization: Conv and
                 MatMul (det: also Add, Mul, Resize, Concat, pools,
                 ConvTranspose) with per-channel int8 weights and uint8
                 activations, ranges at the 99.999th percentile calibrated on
                 DIR/*.npy (each file one float32 NCHW input tensor, fed one
                 file at a time in sorted name order).  The recogniser's
                 classification head stays float.

The output is written to OUT.tmp and renamed to OUT.  Same inputs and package
versions give a byte-identical OUT on the same machine.  One summary line goes
to stdout; on failure a message goes to stderr and the exit status is 1
(2 for usage errors).
"""

import argparse
import contextlib
import io
import logging
import os
import random
import sys
import tempfile

TARGET_OPSET = 17
PERCENTILE = 99.999
# Ops given QDQ pairs, per model.  The recogniser loses accuracy with more than
# Conv and MatMul (Add/Mul/Concat/pools/Transpose/Reshape too: 96% equal lines
# vs 98%, no faster).  The detector gains with its elementwise ops, resizes and
# pools in int8 (fewer float<->int8 hops: 0.64 vs 0.71 of fp32 time, map IoU
# 0.954 vs 0.944).
OP_TYPES = {
    "rec": ("Conv", "MatMul"),
    "cls": ("Conv", "MatMul"),
    "det": ("Conv", "ConvTranspose", "MatMul", "Add", "Mul", "Resize", "Concat", "GlobalAveragePool", "MaxPool"),
}
FORMAT_TAG = "docpipe-derive-ocr-model/1"


class DeriveError(Exception):
    pass


# --------------------------------------------------------------------------
# Latin character set


def is_latin_char(ch):
    cp = ord(ch)
    return (
        0x20 <= cp <= 0x7E  # printable ASCII
        or 0xA0 <= cp <= 0xFF  # Latin-1 Supplement, printable part
        or 0x100 <= cp <= 0x24F  # Latin Extended-A and -B
        or 0x1E00 <= cp <= 0x1EFF  # Latin Extended Additional
        or 0x2010 <= cp <= 0x2044  # dashes, quotes, bullets, ellipsis, per mille...
        or 0x20A0 <= cp <= 0x20CF  # currency symbols
        or 0x2100 <= cp <= 0x214F  # letterlike symbols (™ ℓ №)
    )


def is_latin_line(line):
    return len(line) > 0 and all(is_latin_char(c) for c in line)


# --------------------------------------------------------------------------
# Graph helpers


def _const_arrays(model):
    """name -> (kind, proto) for initializers and Constant-node tensors."""
    out = {}
    for t in model.graph.initializer:
        out[t.name] = ("init", t)
    for n in model.graph.node:
        if n.op_type == "Constant" and len(n.output) == 1:
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = ("const", a)
    return out


def _const_value(entry):
    from onnx import numpy_helper

    kind, proto = entry
    return numpy_helper.to_array(proto if kind == "init" else proto.t)


def _set_const_value(entry, arr):
    from onnx import numpy_helper

    kind, proto = entry
    if kind == "init":
        proto.CopyFrom(numpy_helper.from_array(arr, proto.name))
    else:
        proto.t.CopyFrom(numpy_helper.from_array(arr, proto.t.name))


def _uses(model, name):
    return sum(1 for n in model.graph.node for i in n.input if i == name)


def _downstream(model, start):
    """Names of all tensors computed from tensor `start` (inclusive)."""
    seen = {start}
    changed = True
    while changed:
        changed = False
        for n in model.graph.node:
            if any(i in seen for i in n.input):
                for o in n.output:
                    if o and o not in seen:
                        seen.add(o)
                        changed = True
    return seen


# --------------------------------------------------------------------------
# Latin head cut


def latin_head_cut(model):
    import numpy as np

    meta = {p.key: p for p in model.metadata_props}
    if "character" not in meta:
        raise DeriveError("recogniser has no metadata_props 'character' (dictionary)")
    lines = meta["character"].value.split("\n")
    nclasses = len(lines) + 2
    consts = _const_arrays(model)

    # The last MatMul/Gemm whose constant operand has nclasses output columns.
    head = None
    for node in reversed(model.graph.node):
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        w_name = node.input[1]
        if w_name not in consts:
            continue
        w = _const_value(consts[w_name])
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        axis = 0 if trans_b else w.ndim - 1
        if w.ndim >= 2 and w.shape[axis] == nclasses:
            head = (node, w_name, w, axis)
            break
    if head is None:
        raise DeriveError(
            f"no MatMul/Gemm with a constant of {nclasses} columns "
            f"(dictionary has {len(lines)} lines + blank + space)"
        )
    node, w_name, w, w_axis = head
    if _uses(model, w_name) != 1:
        raise DeriveError(f"head weight {w_name} is shared by several nodes")

    keep_lines = [i for i, line in enumerate(lines) if is_latin_line(line)]
    keep = np.array([0] + [i + 1 for i in keep_lines] + [nclasses - 1], dtype=np.int64)
    _set_const_value(consts[w_name], np.ascontiguousarray(np.take(w, keep, axis=w_axis)))

    # Bias: Gemm's C, or the Add that consumes the MatMul's output.
    bias_done = False
    if node.op_type == "Gemm" and len(node.input) >= 3 and node.input[2] in consts:
        b_entries = [(node.input[2], node)]
    else:
        b_entries = [
            (i, n)
            for n in model.graph.node
            if n.op_type == "Add" and node.output[0] in n.input
            for i in n.input
            if i in consts
        ]
    for b_name, _ in b_entries:
        b = _const_value(consts[b_name])
        if b.ndim >= 1 and b.shape[-1] == nclasses:
            if _uses(model, b_name) != 1:
                raise DeriveError(f"head bias {b_name} is shared by several nodes")
            _set_const_value(consts[b_name], np.ascontiguousarray(np.take(b, keep, axis=b.ndim - 1)))
            bias_done = True
    if not bias_done and node.op_type == "MatMul":
        raise DeriveError(f"no Add with a {nclasses}-wide constant bias after {node.name or node.op_type}")

    # No other constant downstream may still carry the old class count.
    down = _downstream(model, node.output[0])
    for n in model.graph.node:
        if any(i in down for i in n.input):
            for i in n.input:
                if i in consts and i not in (w_name,) and i not in [b for b, _ in b_entries]:
                    v = _const_value(consts[i])
                    if nclasses in v.shape or (v.size < 16 and nclasses in v.flatten().tolist()):
                        raise DeriveError(f"constant {i} after the head mentions {nclasses} classes")

    # Shapes recorded for tensors after the head.
    new_n = len(keep)
    for vi in list(model.graph.value_info) + list(model.graph.output):
        if vi.name in down:
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value == nclasses:
                    d.dim_value = new_n

    meta["character"].value = "\n".join(lines[i] for i in keep_lines)
    return len(keep_lines), len(lines), node.name or node.op_type


# --------------------------------------------------------------------------
# int8


class NpyReader:
    """CalibrationDataReader over DIR/*.npy, one file per call, sorted order."""

    def __init__(self, files, input_name):
        self.files = files
        self.input_name = input_name
        self.pos = 0

    def get_next(self):
        import numpy as np

        if self.pos >= len(self.files):
            return None
        path = self.files[self.pos]
        self.pos += 1
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise DeriveError(f"cannot read calibration tensor {path}: {e}") from e
        if arr.dtype != np.float32 or arr.ndim != 4:
            raise DeriveError(f"{path}: want a float32 4-D (N,C,H,W) tensor, got {arr.dtype} {arr.shape}")
        return {self.input_name: np.ascontiguousarray(arr)}

    def rewind(self):
        self.pos = 0

    # For ORT's strided calibration (extra_options CalibStridedMinMax): the
    # calibrator is fed [start, end) per collect_data call, so histograms of
    # differently shaped tensors are never stacked together.
    def __len__(self):
        return len(self.files)

    def set_range(self, start_index, end_index):
        self.files_all = getattr(self, "files_all", self.files)
        self.files = self.files_all[start_index:end_index]
        self.pos = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def calib_files(calib_dir):
    if not calib_dir:
        raise DeriveError("--int8 needs --calib DIR")
    if not os.path.isdir(calib_dir):
        raise DeriveError(f"calibration directory {calib_dir} does not exist")
    files = sorted(
        os.path.join(calib_dir, f) for f in os.listdir(calib_dir) if f.endswith(".npy") and not f.startswith(".")
    )
    if not files:
        raise DeriveError(f"no *.npy calibration tensors in {calib_dir}")
    return files


def quantize_int8(model, calib_dir, workdir, op_types, exclude_head=None):
    """Returns (quantized ModelProto, count of quantized nodes by op)."""
    import numpy as np
    import onnx
    from onnx import version_converter

    files = calib_files(calib_dir)
    # Quiet ORT's advisory warnings; errors still raise.
    logging.getLogger().setLevel(logging.ERROR)
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < TARGET_OPSET:
        model = version_converter.convert_version(model, TARGET_OPSET)
    onnx.checker.check_model(model)
    src = os.path.join(workdir, "opset.onnx")
    pre = os.path.join(workdir, "pre.onnx")
    qpath = os.path.join(workdir, "q.onnx")
    onnx.save(model, src)
    # Constant folding, Conv+BatchNorm fusion, Identity removal, ONNX shape inference.
    quant_pre_process(src, pre, skip_symbolic_shape=True)

    pre_model = onnx.load(pre)
    input_names = [i.name for i in pre_model.graph.input if i.name not in {t.name for t in pre_model.graph.initializer}]
    if len(input_names) != 1:
        raise DeriveError(f"want a model with one input, found {input_names}")
    exclude = []
    if exclude_head:
        exclude = [n.name for n in pre_model.graph.node if exclude_head(n, pre_model)]

    random.seed(0)
    np.random.seed(0)
    quantize_static(
        pre,
        qpath,
        NpyReader(files, input_names[0]),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=exclude,
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        # Percentile (99.999) ranges: on the fixtures' tensors it kept the
        # detector's binary map much closer to fp32 than MinMax (IoU 0.94 vs
        # 0.87) and the recogniser's text as close.  ORT's histogram
        # calibrators cannot stack tensors of different shapes, so they are fed
        # one file per collect_data call (CalibStridedMinMax=1, which despite
        # its name drives any calibrator; NpyReader.set_range).
        calibrate_method=CalibrationMethod.Percentile,
        extra_options={
            "CalibStridedMinMax": 1,
            "CalibPercentile": PERCENTILE,
            "CalibTensorRangeSymmetric": False,
        },
    )
    q = onnx.load(qpath)
    dq_inputs = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    counts = {}
    for n in q.graph.node:
        if n.op_type in op_types and any(i in dq_inputs for i in n.input):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    total = {}
    for n in pre_model.graph.node:
        if n.op_type in op_types:
            total[n.op_type] = total.get(n.op_type, 0) + 1
    return q, counts, total, len(files)


def rec_head_node(class_count):
    """Predicate: the classification-head MatMul (left in float)."""

    def pred(node, model):
        if node.op_type not in ("MatMul", "Gemm"):
            return False
        inits = {t.name: t for t in model.graph.initializer}
        w = inits.get(node.input[1]) if len(node.input) > 1 else None
        return w is not None and len(w.dims) >= 2 and class_count in tuple(w.dims)

    return pred


# --------------------------------------------------------------------------
# Output


def finalize(model, src_model, args, summary):
    import onnx

    # Deterministic, self-describing provenance; no timestamps or paths.
    model.producer_name = "docpipe-derive-ocr-model"
    model.producer_version = "1"
    model.doc_string = ""
    src_meta = {p.key: p.value for p in src_model.metadata_props}
    del model.metadata_props[:]
    for k in sorted(src_meta):
        if k != "docpipe_derive":
            p = model.metadata_props.add()
            p.key, p.value = k, src_meta[k]
    p = model.metadata_props.add()
    p.key, p.value = "docpipe_derive", f"{FORMAT_TAG} {summary}"
    onnx.checker.check_model(model)
    tmp = args.out + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(model.SerializeToString(deterministic=True))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.out)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise DeriveError(f"cannot write {args.out}: {e}") from e


def smoke_test(path, kind):
    """Runs the written model once and returns its output shape."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    shape = {"rec": (1, 3, 48, 320), "det": (1, 3, 64, 64), "cls": (1, 3, 48, 192)}[kind]
    x = np.zeros(shape, np.float32)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0].shape


def run(args):
    import onnx

    if not os.path.isfile(args.src):
        raise DeriveError(f"source model {args.src} does not exist")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise DeriveError(f"output directory {out_dir} does not exist")
    if args.calib and not args.int8:
        raise DeriveError("--calib is only meaningful with --int8")
    if args.kind in ("det", "cls") and not args.int8:
        raise DeriveError("nothing to do without --int8")
    charset = getattr(args, "charset", "full")
    if args.kind == "rec" and charset == "full" and not args.int8:
        raise DeriveError("nothing to do (give --charset latin and/or --int8)")
    if args.int8:
        calib_files(args.calib)  # fail early, before any work

    try:
        src_model = onnx.load(args.src)
    except Exception as e:  # noqa: BLE001
        raise DeriveError(f"cannot load {args.src}: {e}") from e
    model = onnx.ModelProto()
    model.CopyFrom(src_model)
    parts = []
    expect_classes = None

    if args.kind == "rec" and charset == "latin":
        kept, total, head = latin_head_cut(model)
        expect_classes = kept + 2
        parts.append(f"latin head: kept {kept} of {total} dictionary lines ({kept + 2} classes with blank and space)")
        src_model = model  # carry the rewritten 'character' metadata

    if args.int8:
        exclude = None
        if args.kind == "rec":
            meta = {p.key: p.value for p in model.metadata_props}
            if "character" in meta:
                exclude = rec_head_node(len(meta["character"].split("\n")) + 2)
        with tempfile.TemporaryDirectory(prefix="docpipe-derive-") as work:
            # ORT's quantizer prints progress; keep stdout for our one line.
            with contextlib.redirect_stdout(io.StringIO()):
                model, counts, total, nfiles = quantize_int8(model, args.calib, work, OP_TYPES[args.kind], exclude)
        q = ", ".join(f"{counts.get(k, 0)}/{total[k]} {k}" for k in sorted(total))
        parts.append(f"int8 QDQ opset {TARGET_OPSET}: quantized {q} (u8 act, s8 per-channel weights, percentile {PERCENTILE} on {nfiles} tensors)")

    summary = f"{args.kind}: " + "; ".join(parts)
    finalize(model, src_model, args, summary)
    try:
        shape = smoke_test(args.out, args.kind)
    except Exception as e:  # noqa: BLE001
        with contextlib.suppress(OSError):
            os.unlink(args.out)
        raise DeriveError(f"derived model fails to run: {e}") from e
    if expect_classes is not None and shape[-1] != expect_classes:
        with contextlib.suppress(OSError):
            os.unlink(args.out)
        raise DeriveError(f"derived model outputs {shape[-1]} classes, want {expect_classes}")
    print(f"{summary} -> {args.out}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="derive-ocr-model.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="kind", required=True)
    for kind in ("rec", "det", "cls"):
        p = sub.add_parser(kind)
        p.add_argument("--src", required=True, help="source ONNX model")
        p.add_argument("--out", required=True, help="derived ONNX model to write")
        if kind == "rec":
            p.add_argument("--charset", choices=("latin", "full"), default="full")
        p.add_argument("--int8", action="store_true", help="static int8 quantization")
        p.add_argument("--calib", metavar="DIR", help="directory of float32 NCHW *.npy input tensors")
    args = ap.parse_args(argv)
    random.seed(0)
    try:
        run(args)
    except DeriveError as e:
        print(f"derive-ocr-model: {args.kind}: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"derive-ocr-model: missing package ({e}); is PYTHONPATH the derive environment?", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001
        print(f"derive-ocr-model: {args.kind}: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
