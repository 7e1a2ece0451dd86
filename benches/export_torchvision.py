"""Export torchvision models (seeded random weights) to ONNX for trtc, opset 17, dynamic batch.
BatchNorm statistics are measured on random images first (as in shared/'s InceptionV3), so
activations keep a sane scale through the network and fp16 does not overflow.

python3 benches/export_torchvision.py OUTDIR [resnet50 mobilenet_v2 inception_v3]
"""
import sys
import torch
import torchvision

out = sys.argv[1]
names = sys.argv[2:] or ["resnet50", "mobilenet_v2", "inception_v3"]
torch.manual_seed(0)
for name in names:
    kwargs = {"aux_logits": False, "init_weights": True} if name == "inception_v3" else {}
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    size = 299 if name == "inception_v3" else 224
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, size, size))
    model.eval()
    x = torch.randn(1, 3, size, size)
    torch.onnx.export(model, x, f"{out}/{name}.onnx", opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    print("exported", name, flush=True)
