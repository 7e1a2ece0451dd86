"""PyTorch on the same GPU, for trtc's comparisons: eager (cuDNN) FP32 and FP16 with
channels_last, and optionally torch.compile; batch 1 latency (CUDA-graph replay for
compile) and batch-N throughput, median of timed runs with CUDA events.

python3 benches/pytorch_baseline.py [--compile] [--compile-mode default] [--dtypes fp32,fp16]
    [--batch 1,128] [--iters 50] resnet50 mobilenet_v2 inception_v3

The compiled model's batch-1 latency is timed with torch.compile's CUDA graphs when
--compile-mode is reduce-overhead or max-autotune.
"""
import argparse, json, time
import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("models", nargs="*", default=["resnet50", "mobilenet_v2", "inception_v3"])
p.add_argument("--batch", default="1,128")
p.add_argument("--iters", type=int, default=50)
p.add_argument("--compile", action="store_true")
p.add_argument("--compile-only", action="store_true", help="time torch.compile, not eager")
p.add_argument("--compile-mode", default="default")
p.add_argument("--dtypes", default="fp32,fp16")
a = p.parse_args()
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def timed(fn, iters):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


results = []
for name in a.models:
    kwargs = {"aux_logits": False, "init_weights": True} if name == "inception_v3" else {}
    size = 299 if name == "inception_v3" else 224
    dtypes = {"fp32": torch.float32, "fp16": torch.float16}
    for dtype in [dtypes[d] for d in a.dtypes.split(",")]:
        model = getattr(torchvision.models, name)(weights=None, **kwargs).eval().cuda().to(dtype).to(memory_format=torch.channels_last)
        variants = [] if a.compile_only else [("eager", model)]
        if a.compile or a.compile_only:
            variants.append((f"compile-{a.compile_mode}", torch.compile(model, mode=a.compile_mode)))
        for kind, m in variants:
            for b in [int(x) for x in a.batch.split(",")]:
                x = torch.randn(b, 3, size, size, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
                with torch.inference_mode():
                    t0 = time.time(); m(x); torch.cuda.synchronize(); first = time.time() - t0
                    ms = timed(lambda: m(x), a.iters)
                r = {"model": name, "dtype": str(dtype).split(".")[-1], "kind": kind, "batch": b, "ms": ms, "img_s": b / ms * 1e3, "first_run_s": first}
                results.append(r)
                print(json.dumps(r), flush=True)
print(json.dumps(results))
