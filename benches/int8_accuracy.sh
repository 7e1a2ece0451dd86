#!/usr/bin/env bash
# INT8 simulated on the CPU: calibrate EfficientNet-Lite0 on data/natural/calib with each
# calibrator, write the QDQ model (per-channel INT8 weights, Q/DQ on every Conv/Gemm/MatMul
# data input), and count top-1 agreement with the f32 model over data/natural/heldout, both
# run on tract. Fake quantization in f32, not a GPU INT8 engine.
#
# Usage: benches/int8_accuracy.sh [MODEL] [CALIB_DIR] [HELDOUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/efficientnet_lite0.onnx}
CALIB=${2:-data/natural/calib}
HELDOUT=${3:-data/natural/heldout}
OUT=${OUT:-target/int8_accuracy}
mkdir -p "$OUT"
cargo build --bin trtc --example top1_agreement   # dev profile: dependencies at opt-level 2
BIN=${CARGO_TARGET_DIR:-target}/debug
for c in entropy minmax percentile; do
  "$BIN/trtc" calibrate "$MODEL" --calibration-data "$CALIB" --calibrator "$c" \
    -o "$OUT/$c.cache" --write-qdq "$OUT/$c.qdq.onnx"
  echo "== $c"
  "$BIN/examples/top1_agreement" "$MODEL" "$OUT/$c.qdq.onnx" "$HELDOUT" | tail -n 1
done
