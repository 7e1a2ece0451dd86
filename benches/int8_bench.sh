#!/usr/bin/env bash
# INT8 against FP16 on the four CNNs (issue: INT8), on one GPU machine in one lease:
#   bash benches/int8_bench.sh TRTC_BINARY MODEL_DIR [MODELS]
# (MODELS: comma-separated, default resnet50,inception_v3,mobilenet_v2,efficientnet_lite0;
# the EfficientNet-Lite0 accuracy check runs when it is among them.)
# For each model: calibrate and compile an INT8 plan (entropy, the 72 images of
# data/natural/calib, tactics timed at batch 1 and 128; wall time printed), then
# `trtc bench` the FP16 model and the INT8 plan at batch 1 and 128 (engines resident).
# Each INT8 plan runs, per batch size, the faster of its INT8 and FP16 engines; the INT8
# engines are also run forced (TRTC_INT8_CHOICE=int8), with a per-layer profile for
# ResNet-50 and InceptionV3. Then EfficientNet-Lite0 (real weights): top-1 of the INT8
# plan (as chosen, and forced to INT8) against the FP32 plan on the 252 held-out images
# of data/natural/heldout (disjoint from the calibration set).
# ResNet-50, MobileNetV2 and InceptionV3 are torchvision's with seeded random weights
# (benches/export_torchvision.py): their numbers are speed only.
set -euo pipefail
T=$1
D=$2
MODELS=${3:-resnet50,inception_v3,mobilenet_v2,efficientnet_lite0}
mkdir -p "$D"
TV=$(echo "$MODELS" | tr ',' '\n' | grep -v efficientnet_lite0 | tr '\n' ' ')
[ -n "$TV" ] && python3 benches/export_torchvision.py "$D" $TV
cp models/efficientnet_lite0.onnx "$D/"
for m in $(echo "$MODELS" | tr ',' ' '); do
  size=224
  [ "$m" = inception_v3 ] && size=299
  echo "=== $m"
  start=$(date +%s.%N)
  "$T" compile "$D/$m.onnx" --precision int8 --calibration-data data/natural/calib \
    --size $size --resize $size --max-batch-size 128 -o "$D/$m.int8.trtc" > "$D/$m.compile.txt" 2>&1 \
    || { tail -20 "$D/$m.compile.txt"; continue; }
  end=$(date +%s.%N)
  echo "$m: calibration and build (tactics at batch 1 and 128) $(python3 -c "print(round($end - $start, 1))") s"
  grep -iE "int8|calibrat" "$D/$m.compile.txt" | head -12
  "$T" bench "$D/$m.onnx" --precision fp16 --batch 1,128 --iterations 30
  "$T" bench "$D/$m.int8.trtc" --batch 1,128 --iterations 30
  echo "--- $m, the INT8 engines forced (TRTC_INT8_CHOICE=int8)"
  TRTC_INT8_CHOICE=int8 "$T" bench "$D/$m.int8.trtc" --batch 1,128 --iterations 30
  if [ "$m" = resnet50 ] || [ "$m" = inception_v3 ]; then
    TRTC_INT8_CHOICE=int8 "$T" bench "$D/$m.int8.trtc" --batch 128 --iterations 5 --profile \
      --slowest 25 --peak-gbps 4300 | sed -n '/^profile/,$p'
  fi
done
case ",$MODELS," in *,efficientnet_lite0,*) ;; *) exit 0 ;; esac
echo "=== EfficientNet-Lite0 top-1, INT8 plan against FP32 plan, data/natural/heldout"
"$T" compile models/efficientnet_lite0.onnx --precision fp32 --max-batch-size 32 -o "$D/e32.trtc" > /dev/null
"$T" run "$D/e32.trtc" --image data/natural/heldout --batch 32 > "$D/top1_fp32.txt"
"$T" run "$D/efficientnet_lite0.int8.trtc" --image data/natural/heldout --batch 32 > "$D/top1_int8.txt"
TRTC_INT8_CHOICE=int8 "$T" run "$D/efficientnet_lite0.int8.trtc" --image data/natural/heldout --batch 32 > "$D/top1_int8_forced.txt"
for f in top1_int8 top1_int8_forced; do
echo "$f:"
python3 - "$D/top1_fp32.txt" "$D/$f.txt" <<'PY'
import sys
def top1(path):
    out = {}
    for line in open(path):
        parts = line.split()
        if len(parts) >= 2 and parts[0].lower().endswith((".jpg", ".jpeg", ".png")):
            out.setdefault(parts[0], parts[1])
    return out
a, b = top1(sys.argv[1]), top1(sys.argv[2])
same = sum(1 for k in a if b.get(k) == a[k])
print(f"top-1 agreement: {same}/{len(a)} ({100.0 * same / max(len(a), 1):.1f}%)")
PY
done
