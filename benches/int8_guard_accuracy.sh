#!/usr/bin/env bash
# The accuracy guard's effect on the GPU's INT8 engines (issue: INT8), EfficientNet-Lite0
# (real weights), on one GPU machine:  bash benches/int8_guard_accuracy.sh TRTC_BINARY DIR
# Compiles an INT8 plan with the guard (48 held-out images, top-1 tolerance 0.99), one
# without, and an FP32 plan; runs each on the 252 images of data/natural/heldout with the
# INT8 engines forced (TRTC_INT8_CHOICE=int8), and the guarded plan as compiled; prints each
# one's top-1 agreement with FP32 on all 252 and on the 204 the guard never saw (the guard
# reads the first 48 in name order). Results go to $OUT when it is set, else DIR.
set -euo pipefail
T=$1
D=$2
OUT=${OUT:-$D}
mkdir -p "$D" "$OUT"
date -u +%H:%M:%S
/usr/bin/time -f "guarded compile: %e s" "$T" compile models/efficientnet_lite0.onnx --precision int8 --calibration-data data/natural/calib --guard-data data/natural/heldout --guard-batches 48 --accuracy-tolerance top1:0.99 --max-batch-size 32 -o "$D"/eg.trtc > "$OUT"/guard_compile.txt 2>&1
"$T" compile models/efficientnet_lite0.onnx --precision int8 --calibration-data data/natural/calib --max-batch-size 32 -o "$D"/e8.trtc > "$OUT"/plain_compile.txt 2>&1
"$T" compile models/efficientnet_lite0.onnx --precision fp32 --max-batch-size 32 -o "$D"/e32.trtc > /dev/null 2>&1
"$T" run "$D"/e32.trtc --image data/natural/heldout --batch 32 > "$D"/f32.txt
TRTC_INT8_CHOICE=int8 "$T" run "$D"/eg.trtc --image data/natural/heldout --batch 32 > "$D"/g8.txt
TRTC_INT8_CHOICE=int8 "$T" run "$D"/e8.trtc --image data/natural/heldout --batch 32 > "$D"/p8.txt
"$T" run "$D"/eg.trtc --image data/natural/heldout --batch 32 > "$D"/gchosen.txt
python3 - "$D" <<'PY'
import sys, os
D = sys.argv[1]
def top1(path):
    out = {}
    for line in open(path):
        p = line.split()
        if len(p) >= 2 and p[0].lower().endswith((".jpg", ".jpeg", ".png")):
            out.setdefault(os.path.basename(p[0]), p[1])
    return out
ref = top1(f"{D}/f32.txt")
guard = set(sorted(ref)[:48])
for name in ["p8", "g8", "gchosen"]:
    got = top1(f"{D}/{name}.txt")
    all_ = sum(got.get(k) == v for k, v in ref.items())
    rest = [k for k in ref if k not in guard]
    r = sum(got.get(k) == ref[k] for k in rest)
    print(f"{name}: all {all_}/{len(ref)} ({100*all_/len(ref):.1f}%), outside the guard's 48: {r}/{len(rest)} ({100*r/len(rest):.1f}%)")
PY
grep -iE "guard|kept|agree|INT8|batch" "$OUT"/guard_compile.txt | head -20
date -u +%H:%M:%S
