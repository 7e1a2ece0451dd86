"""Issue 13's table in one run on one machine: for each of the four CNNs, trtc FP16 (engines
resident; host to host one run at a time; host to host pipelined) and PyTorch's
torch.compile(mode="reduce-overhead") FP16 channels_last on the same GPU, batch 1 and 128.

python3 benches/throughput.py TRTC_BINARY [--iters 30] [--models efficientnet_lite0,resnet50,...]
    [--trtc-only] [--torch-only] [--u8]

EfficientNet-Lite0 is models/efficientnet_lite0.onnx for trtc and timm's efficientnet_lite0
(same architecture, random weights: no network) for PyTorch; the torchvision models are
exported by export_torchvision.py into /tmp/tv. PyTorch is timed as benches/pytorch_baseline.py
times it: median of CUDA-event-timed calls after warm-up, inputs already on the GPU.
Prints one JSON line per measurement and a Markdown table at the end.
"""
import argparse, json, os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZES = {"efficientnet_lite0": 224, "resnet50": 224, "mobilenet_v2": 224, "inception_v3": 299}

p = argparse.ArgumentParser()
p.add_argument("trtc")
p.add_argument("--models", default="efficientnet_lite0,resnet50,mobilenet_v2,inception_v3")
p.add_argument("--iters", type=int, default=30)
p.add_argument("--batch", default="1,128")
p.add_argument("--trtc-only", action="store_true")
p.add_argument("--torch-only", action="store_true")
p.add_argument("--u8", action="store_true", help="also bench a plan compiled with --input-format u8-nhwc")
a = p.parse_args()
batches = [int(b) for b in a.batch.split(",")]


def onnx_path(name):
    if name == "efficientnet_lite0":
        return os.path.join(ROOT, "models", "efficientnet_lite0.onnx")
    path = f"/tmp/tv/{name}.onnx"
    if not os.path.exists(path):
        os.makedirs("/tmp/tv", exist_ok=True)
        subprocess.run([sys.executable, os.path.join(HERE, "export_torchvision.py"), "/tmp/tv", name],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def trtc_bench(name, extra=(), label="f32-nchw"):
    cmd = [a.trtc, "bench", onnx_path(name), "--batch", a.batch, "--precision", "fp16",
           "--iterations", str(a.iters), "--json", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        print(json.dumps({"model": name, "error": out.stderr[-2000:]}), flush=True)
        return {}
    rows = {}
    for r in json.loads(out.stdout):
        row = {"model": name, "runner": "trtc", "input": label, "batch": r["batch"],
               "resident_img_s": r["resident_images_per_s"], "resident_ms": r["resident_p50_ms"],
               "host_img_s": r["images_per_s"], "host_ms": r["p50_ms"],
               "pipelined_img_s": r["pipelined_images_per_s"], "overlapped": r["pipelined_overlapped"]}
        print(json.dumps(row), flush=True)
        rows[r["batch"]] = row
    return rows


def torch_bench(name):
    import torch
    torch.backends.cudnn.benchmark = True
    if name == "efficientnet_lite0":
        import timm
        model = timm.create_model("efficientnet_lite0", pretrained=False)
    else:
        import torchvision
        kwargs = {"aux_logits": False, "init_weights": True} if name == "inception_v3" else {}
        model = getattr(torchvision.models, name)(weights=None, **kwargs)
    model = model.eval().cuda().half().to(memory_format=torch.channels_last)
    m = torch.compile(model, mode="reduce-overhead")
    rows = {}
    for b in batches:
        x = torch.randn(b, 3, SIZES[name], SIZES[name], device="cuda", dtype=torch.half)
        x = x.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            t0 = time.time()
            for _ in range(3):
                m(x)
            torch.cuda.synchronize()
            first = time.time() - t0
            for _ in range(10):
                m(x)
            torch.cuda.synchronize()
            times = []
            for _ in range(a.iters):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record(); m(x); e.record(); torch.cuda.synchronize()
                times.append(s.elapsed_time(e))
        times.sort()
        ms = times[len(times) // 2]
        row = {"model": name, "runner": "torch.compile", "batch": b, "ms": ms, "img_s": b / ms * 1e3,
               "compile_and_first_s": first}
        print(json.dumps(row), flush=True)
        rows[b] = row
    return rows


table = []
for name in a.models.split(","):
    t = {} if a.torch_only else trtc_bench(name)
    u = trtc_bench(name, ("--input-format", "u8-nhwc"), "u8-nhwc") if a.u8 and not a.torch_only else {}
    pt = {} if a.trtc_only else torch_bench(name)
    table.append((name, t, u, pt))

big, one = max(batches), min(batches)
f = lambda v, fmt="{:,.0f}": "-" if v is None else fmt.format(v)
print(f"\n| model | resident b{big} | host, one at a time | host, pipelined | pipelined / resident "
      f"| u8 pipelined | torch.compile b{big} | resident / torch.compile | b{one} trtc / torch.compile ms |")
print("|---|---|---|---|---|---|---|---|---|")
for name, t, u, pt in table:
    tb, pb, ub = t.get(big, {}), pt.get(big, {}), u.get(big, {})
    res, pip = tb.get("resident_img_s"), tb.get("pipelined_img_s")
    ratio = lambda x, y: None if x is None or y is None or y == 0 else x / y
    print(f"| {name} | {f(res)} | {f(tb.get('host_img_s'))} | {f(pip)} | {f(ratio(pip, res), '{:.2f}')} "
          f"| {f(ub.get('pipelined_img_s'))} | {f(pb.get('img_s'))} | {f(ratio(res, pb.get('img_s')), '{:.2f}')} "
          f"| {f(t.get(one, {}).get('resident_ms'), '{:.3f}')} / {f(pt.get(one, {}).get('ms'), '{:.3f}')} |")
