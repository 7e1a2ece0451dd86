"""How far does PyTorch's own fp16 land from its fp32 on the suite's models (same seeded
weights as benches/suite.py builds)? The bound an fp16 engine can be held to on these
random-weight models. Runs on the GPU machine:

    python3 benches/fp16_reference.py [model ...]

One JSON line per model: max |y16 - y32| / max |y32| at the suite's first input size, fp32
with TF32 off, fp16 weights and activations (channels_last), as trtc's fp16 plans run; and
the same of PyTorch's fp32 on the GPU against its fp32 on the CPU (the spread of fp32 itself).
"""
import json
import sys

import torch

names = sys.argv[1:]
sys.argv = sys.argv[:1]
import suite  # noqa: E402  (benches/suite.py; its OUT defaults to /tmp/suite)

torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
for name in names or list(suite.OPSET):
    torch.manual_seed(0)
    m, kind, sizes = suite.prepared(name)
    x = torch.randn(*sizes[0])
    with torch.no_grad():
        ycpu = m(x).double().cuda()
        m32 = m.cuda().float()
        y32 = m32(x.cuda()).double()
        m16 = m.half().to(memory_format=torch.channels_last)
        y16 = m16(x.cuda().half().to(memory_format=torch.channels_last)).double()
    scale = y32.abs().max().clamp_min(1e-6)
    rel = ((y16 - y32).abs().max() / scale).item()
    rel32 = ((ycpu - y32).abs().max() / scale).item()
    print(json.dumps({"model": name, "size": "x".join(map(str, sizes[0][2:])),
                      "torch_fp16_vs_fp32_max_rel": rel,
                      "torch_fp32_gpu_vs_cpu_max_rel": rel32,
                      "finite": bool(torch.isfinite(y16).all())}), flush=True)
