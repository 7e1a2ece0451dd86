#!/usr/bin/env bash
# A/B of two trtc binaries in one lease: FP16 batch 1 and 128, GPU-resident, alternating
# A, B, A, B per model so drift on the machine hits both. Run from the repo root on the GPU
# machine after `benches/gpu_check.sh` has unpacked .dev/ and exported the torchvision models:
#   bash benches/ab_fp16.sh .dev/trtc_base .dev/trtc
set -u
A=$1; B=$2; OUT=${OUT:-/tmp/trtc-gpu}; mkdir -p "$OUT"
for m in models/efficientnet_lite0.onnx /tmp/tv/mobilenet_v2.onnx /tmp/tv/resnet50.onnx /tmp/tv/inception_v3.onnx; do
  for round in 1 2; do
    for bin in "$A" "$B"; do
      echo "== $m $bin round $round"
      timeout 120 $bin bench $m --batch 1,128 --precision fp16 --iterations 30 2>&1 | grep '^fp16'
    done
  done
done 2>&1 | tee "$OUT/ab_fp16.log"
