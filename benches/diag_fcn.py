"""Where does FCN-ResNet50's fp16 error come from? Compile the suite's model in several
configurations (layout, precision, ops kept on the CPU) and compare each with ONNX Runtime.
    python3 benches/diag_fcn.py TRTC SUITE_DIR
"""
import json, subprocess, sys
import numpy as np
import onnxruntime as ort

TRTC, D = sys.argv[1], sys.argv[2]
m = f"{D}/fcn_resnet50.onnx"
x = np.load(f"{D}/fcn_resnet50.512x512.npy")
ref = ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
np.save("/tmp/fcn_ref.npy", ref)
configs = [
    ("fp32 nhwc", ["--precision", "fp32", "--layout", "nhwc"]),
    ("fp16", ["--precision", "fp16"]),
    ("fp16 Resize on cpu", ["--precision", "fp16", "--deny-op", "Resize"]),
    ("fp32 Resize on cpu", ["--precision", "fp32", "--deny-op", "Resize"]),
    ("fp16 nchw", ["--precision", "fp16", "--layout", "nchw"]),
    ("tf32", ["--precision", "tf32"]),
]
for name, args in configs:
    p = subprocess.run([TRTC, "-q", "compile", m, "-o", "/tmp/d.trtc", "--shapes", "x:1x3x512x512", *args],
                       capture_output=True, text=True)
    if p.returncode:
        print(name, "compile error", p.stderr[-300:]); continue
    p = subprocess.run([TRTC, "-q", "run", "/tmp/d.trtc", "--input", f"x={D}/fcn_resnet50.512x512.npy",
                        "--output-dir", "/tmp/dout"], capture_output=True, text=True)
    if p.returncode:
        print(name, "run error", p.stderr[-300:]); continue
    y = np.load("/tmp/dout/y.npy").astype(np.float64)
    d = np.abs(y - ref)
    scale = np.abs(ref).max()
    i = np.unravel_index(d.argmax(), d.shape)
    print(json.dumps({"config": name, "max_rel": float(d.max() / scale), "mean_rel": float(d.mean() / scale),
                      "argmax": [int(v) for v in i], "ref_max": float(scale),
                      "frac_over_1e-2": float((d / scale > 1e-2).mean())}), flush=True)
