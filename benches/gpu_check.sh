#!/usr/bin/env bash
# GPU checks and timings in one lease (see benches/RESULTS.md): run from the repo root on
# the GPU machine with the release binary and the test binaries (.dev/trtc, .dev/gpu_models and
# the op-family tests of crates/trtc-cuda/tests, .dev/cuda_gpu), xz-compressed, in .dev/.
#   [INCEPTION=file.onnx] bash benches/gpu_check.sh tests|models|effnet|torchvision|fp16|throughput|profile16|pytorch|pytorch16|compile16|suite|fp16ref ...
# (throughput: issue 13's table, trtc and torch.compile in one run, TP_ARGS=... passes options;
#  suite: the real-architecture suite of issue 11, benches/suite.py; MODELS=... picks models;
#  fp16ref: PyTorch's own fp16 error on the suite's models, REF_MODELS=... picks them)
set -u
OUT=${OUT:-/tmp/trtc-gpu}; mkdir -p "$OUT"
mkdir -p /work; [ -e /work/main ] || ln -s "$PWD" /work/main   # test paths are baked in at build
for z in .dev/*.xz; do f=${z%.xz}; [ -x $f ] || { xz -dkf $z && chmod +x $f; }; done
export_tv() { mkdir -p /tmp/tv; for m in "$@"; do [ -f /tmp/tv/$m.onnx ] || python3 benches/export_torchvision.py /tmp/tv $m >> "$OUT/export.log" 2>&1 || tail "$OUT/export.log"; done; }
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
for step in "$@"; do
  case $step in
    tests) .dev/cuda_gpu --ignored --test-threads=1 2>&1 | tee "$OUT/cuda_tests.log" | grep -E "^test |test result|panicked|error" ;;
    models)
      [ -n "${INCEPTION:-}" ] || export_tv inception_v3
      TRTC_INCEPTION_V3=${INCEPTION:-/tmp/tv/inception_v3.onnx} .dev/gpu_models --ignored --test-threads=1 --nocapture 2>&1 | tee "$OUT/gpu_models.log" | tail -60 ;;
    fp16)
      export_tv resnet50 mobilenet_v2 inception_v3
      for m in models/efficientnet_lite0.onnx /tmp/tv/resnet50.onnx /tmp/tv/mobilenet_v2.onnx /tmp/tv/inception_v3.onnx; do
        timeout 150 .dev/trtc bench $m --batch 1,128 --precision fp16 --iterations 30 2>&1 | tee -a "$OUT/bench_fp16.log"
      done ;;
    profile16)
      export_tv resnet50 mobilenet_v2 inception_v3
      for m in models/efficientnet_lite0.onnx /tmp/tv/resnet50.onnx /tmp/tv/mobilenet_v2.onnx /tmp/tv/inception_v3.onnx; do
        timeout 150 .dev/trtc bench $m --batch 128 --precision fp16 --iterations 10 --profile --peak-gbps ${PEAK_GBPS:-3000} 2>&1 | tee -a "$OUT/profile16.log"
      done ;;
    pytorch16) timeout ${PYTORCH_TIMEOUT:-560} python3 benches/pytorch_baseline.py --compile --compile-mode reduce-overhead --dtypes fp16 --batch 1,128 --iters 30 resnet50 mobilenet_v2 inception_v3 2>&1 | grep '^{' | tee -a "$OUT/pytorch16.log" ;;
    compile16) timeout 500 python3 benches/pytorch_baseline.py --compile-only --dtypes fp16 --batch 1,128 --iters 30 ${MODELS:-resnet50 mobilenet_v2 inception_v3} 2>&1 | grep -v '^\[' | tee -a "$OUT/pytorch_compile.log" ;;
    effnet) timeout 150 .dev/trtc bench models/efficientnet_lite0.onnx --batch 1,128 --precision fp32,tf32 --iterations 50 2>&1 | tee "$OUT/bench_effnet.log" ;;
    torchvision)
      mkdir -p /tmp/tv && python3 benches/export_torchvision.py /tmp/tv resnet50 mobilenet_v2 inception_v3 > "$OUT/export.log" 2>&1 || tail "$OUT/export.log"
      for m in resnet50 mobilenet_v2 inception_v3; do
        timeout 150 .dev/trtc bench /tmp/tv/$m.onnx --batch 1,128 --precision fp32,tf32 --iterations 30 2>&1 | tee "$OUT/bench_$m.log"
      done ;;
    profile)
      mkdir -p /tmp/tv; [ -f /tmp/tv/resnet50.onnx ] || python3 benches/export_torchvision.py /tmp/tv resnet50 inception_v3 > "$OUT/export.log" 2>&1
      for m in models/efficientnet_lite0.onnx /tmp/tv/resnet50.onnx /tmp/tv/inception_v3.onnx; do
        timeout 150 .dev/trtc bench $m --batch 1,128 --precision fp32 --iterations 20 --profile 2>&1 | tee -a "$OUT/profile.log"
      done ;;
    fp16ref) (cd benches && timeout 240 python3 fp16_reference.py ${REF_MODELS:-} 2>&1 | grep '^{' | tee -a "$OUT/fp16_reference.log") ;;
    throughput) timeout ${TP_TIMEOUT:-560} python3 benches/throughput.py .dev/trtc ${TP_ARGS:-} 2>&1 | grep -E '^[{|]' | tee -a "$OUT/throughput.log" ;;
    suite) timeout ${SUITE_TIMEOUT:-560} python3 benches/suite.py .dev/trtc /tmp/suite ${MODELS:-} 2>&1 | grep '^{' | tee -a "$OUT/suite.log" ;;
    pytorch) python3 benches/pytorch_baseline.py --batch 1,128 --iters 30 resnet50 mobilenet_v2 inception_v3 2>&1 | grep -v '^\[' | tee "$OUT/pytorch.log" ;;
  esac
done
