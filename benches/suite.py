"""The real-architecture suite (issue 11): export models with dynamic H and W, compile them
with trtc for two input sizes, run the plans, and compare with ONNX Runtime (CPU).

Runs on the GPU machine (PyTorch, torchvision, timm, onnxruntime there; seeded weights,
BatchNorm statistics measured on random images so activations keep a sane scale):

    python3 benches/suite.py TRTC OUTDIR [model ...]

Prints one JSON line per (model, size, precision): share of original nodes on the GPU,
GPU segments, build seconds of the shape's engines, max relative error against ONNX
Runtime, finiteness. Also checks `trtc optimize` output with onnx.checker.
"""
import json
import re
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TRTC, OUT = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else (None, "/tmp/suite")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)


class TextDetector(nn.Module):
    """A small U-Net/FPN text-detector-like model: strided convs down, ConvTranspose and
    Resize up, skip connections, a sigmoid probability map (as DBNet heads)."""

    def __init__(self):
        super().__init__()
        c = [3, 16, 32, 64]
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c[i], c[i + 1], 3, 2, 1), nn.BatchNorm2d(c[i + 1]), nn.ReLU())
            for i in range(3))
        self.lat = nn.ModuleList(nn.Conv2d(c[i + 1], 32, 1) for i in range(3))
        self.up = nn.ConvTranspose2d(32, 16, 2, 2)
        self.head = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.ConvTranspose2d(16, 1, 2, 2), nn.Sigmoid())

    def forward(self, x):
        feats = []
        for d in self.down:
            x = d(x)
            feats.append(x)
        p = self.lat[2](feats[2])
        p = F.interpolate(p, size=feats[1].shape[2:], mode="nearest") + self.lat[1](feats[1])
        p = F.interpolate(p, scale_factor=2.0, mode="bilinear", align_corners=False) + self.lat[0](feats[0])
        return self.head(self.up(p))


def build(name):
    import timm
    import torchvision.models as tv
    import torchvision.models.segmentation as seg
    if name == "textdet":
        return TextDetector(), "image", [(1, 3, 320, 320), (1, 3, 480, 640)]
    if name in ("fcn_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"):
        kw = {"weights": None, "weights_backbone": None}
        if name != "lraspp_mobilenet_v3_large":
            kw["aux_loss"] = False
        m = getattr(seg, name)(**kw)
        return m, "seg", [(1, 3, 512, 512), (1, 3, 480, 640)]
    if name.startswith("timm_"):
        return timm.create_model(name[5:], pretrained=False), "cls", [(1, 3, 224, 224), (1, 3, 320, 320)]
    kw = {"weights": None}
    if name == "googlenet":
        kw.update(aux_logits=False, init_weights=True)
    # ViT's position embeddings fix H and W: its two shapes are two batch sizes (its shape
    # arithmetic reads the batch, so each batch size gets engines of its own).
    sizes = [(1, 3, 224, 224), (2, 3, 224, 224)] if name == "vit_b_16" else [(1, 3, 224, 224), (1, 3, 320, 320)]
    m = getattr(tv, name)(**kw)
    if name == "vit_b_16":
        # torchvision zero-initializes the classifier head: every output would be 0.
        nn.init.normal_(m.heads.head.weight, std=0.02)
    return m, "cls", sizes


OPSET = {"squeezenet1_1": 11, "googlenet": 12, "shufflenet_v2_x1_0": 13, "densenet121": 13,
         "fcn_resnet50": 11, "deeplabv3_mobilenet_v3_large": 14, "lraspp_mobilenet_v3_large": 16,
         "vit_b_16": 17, "timm_efficientnet_b0": 15, "timm_mobilenetv3_large_100": 13,
         "timm_convnext_tiny": 17, "textdet": 11, "googlenet_opset9": 9}


class SegOut(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def prepared(name):
    """The suite's model `name` in eval mode, seeded weights, BatchNorm statistics measured
    on random images: (model, kind, sizes)."""
    base = "googlenet" if name == "googlenet_opset9" else name
    m, kind, sizes = build(base)
    if kind == "seg":
        m = SegOut(m)
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
    m.train()
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(2, *sizes[0][1:]))
    m.eval()
    return m, kind, sizes


def export(name):
    path = f"{OUT}/{name}.onnx"
    base = "googlenet" if name == "googlenet_opset9" else name
    m, kind, sizes = prepared(name)
    if not os.path.exists(path):
        # ViT's position embeddings fix H and W; PyTorch cannot export opset-9 ceil-mode
        # pools with dynamic H and W: those two are dynamic in the batch only.
        static_hw = base == "vit_b_16" or name == "googlenet_opset9"
        dyn = {0: "N"} if static_hw else {0: "N", 2: "H", 3: "W"}
        out_dyn = {0: "N", 2: "H", 3: "W"} if kind != "cls" else {0: "N"}
        torch.onnx.export(m, torch.randn(*sizes[0]), path, opset_version=OPSET[name],
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": dyn, "y": out_dyn}, dynamo=False,
                          keep_initializers_as_inputs=(name == "googlenet_opset9"))
    if name == "googlenet_opset9":
        sizes = sizes[:1]
    return path, sizes


def tag(s):
    """`224x224`, or `b2.224x224` for a batch other than 1."""
    return (f"b{s[0]}." if s[0] != 1 else "") + f"{s[2]}x{s[3]}"


def sh(cmd, timeout=300):
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr, time.time() - t


def main():
    import onnx
    import onnxruntime as ort
    names = sys.argv[3:] or list(OPSET)
    for name in names:
        rec = {"model": name}
        try:
            path, sizes = export(name)
        except Exception as e:  # noqa: BLE001
            print(json.dumps({**rec, "error": f"export: {e}"[:300]}), flush=True)
            continue
        # trtc optimize must write ONNX that passes the checker for the model's own opset.
        rc, log, _ = sh([TRTC, "-q", "optimize", path, "-o", f"{OUT}/{name}.opt.onnx"])
        try:
            onnx.checker.check_model(onnx.load(f"{OUT}/{name}.opt.onnx"), full_check=True)
            checker = "ok" if rc == 0 else f"rc {rc}"
        except Exception as e:  # noqa: BLE001
            checker = f"{e}"[:200]
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        inputs = []
        # A shape not compiled for (dynamic H and W): its engines are built when it arrives.
        # ViT: a batch size not compiled for.
        new = ([(3, 3, 224, 224)] if name == "vit_b_16" else
               [] if name == "googlenet_opset9" else [(1, 3, sizes[0][2] + 32, sizes[0][3] + 32)])
        for s in sizes + new:
            x = rng.standard_normal(s, dtype=np.float32)
            f = f"{OUT}/{name}.{tag(s)}.npy"
            np.save(f, x)
            inputs.append((s, f, sess.run(None, {"x": x})[0]))
        shapes = sum([["--shapes", "x:" + "x".join(map(str, s))] for s in sizes], [])
        for prec in ("fp32", "fp16"):
            plan = f"{OUT}/{name}.{prec}.trtc"
            rc, log, secs = sh([TRTC, "-q", "compile", path, "-o", plan, "--precision", prec,
                                "--report", plan + ".json", *shapes,
                                "--max-batch-size", str(max(s[0] for s in sizes + new))], timeout=600)
            if rc != 0:
                print(json.dumps({**rec, "precision": prec, "error": log[-600:]}), flush=True)
                continue
            report = json.load(open(plan + ".json"))
            by_key = {s["shapes"]: s for s in report.get("shapes", [])}
            for s, f, ref in inputs:
                key = "x:" + "x".join(map(str, s[1:]))
                # Shape arithmetic on the batch puts the batch in the key too; a model
                # static past the batch has one report, not one per shape.
                key = key if key in by_key else "x:" + "x".join(map(str, s))
                r = by_key.get(key, {}) if by_key else {"report": report}
                segs = r.get("report", {}).get("segments", [])
                gpu = sum(x["original_nodes"] for x in segs if x["backend"] == "gpu" and not x.get("engine_error"))
                allnodes = sum(x["original_nodes"] for x in segs) or 1
                fallback = {}
                for fb in r.get("report", {}).get("fallback", []):
                    k = f'{fb["op"]}: {fb["reason"][:90]}'
                    fallback[k] = fallback.get(k, 0) + 1
                od = f"{OUT}/{name}.{prec}.{tag(s)}"
                os.makedirs(od, exist_ok=True)
                compiled = s in sizes
                rc, log, run_s = sh([TRTC, "run", plan, "--input", f"x={f}", "--output-dir", od])
                out = {**rec, "precision": prec, "size": tag(s), "checker": checker,
                       "gpu_share": round(gpu / allnodes, 4), "gpu_segments": sum(
                           1 for x in segs if x["backend"] == "gpu" and not x.get("engine_error")),
                       "build_s": round(r.get("build_seconds", -1), 2), "compile_s": round(secs, 1),
                       "fallback": dict(sorted(fallback.items(), key=lambda kv: -kv[1])[:6])}
                if not compiled:
                    # Built at run time: the partition is not in the plan's report, the log
                    # says how long the engines took.
                    built = re.findall(r"built in ([0-9.]+) s", log)
                    out["new_shape_build_s"] = float(built[0]) if built else None
                    for k in ("gpu_share", "gpu_segments", "build_s", "fallback"):
                        out.pop(k)
                if rc != 0:
                    out["error"] = log[-500:]
                else:
                    y = np.load(f"{od}/y.npy").astype(np.float64)
                    scale = max(np.abs(ref).max(), 1e-6)
                    out["max_rel_err"] = float(np.abs(y - ref).max() / scale)
                    out["finite"] = bool(np.isfinite(y).all())
                    out["run_s"] = round(run_s, 2)
                print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
