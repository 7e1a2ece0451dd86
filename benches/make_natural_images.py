#!/usr/bin/env python3
"""Natural images for INT8 calibration and accuracy checks: data/natural/{calib,heldout}.

Sources: only photographs shipped inside Python packages (no download at run time):
scikit-image's data directory, matplotlib's sample data, scikit-learn's sample images.
Each source gives 9 square crops (the whole shorter side at the centre; 3/4 of it at the
top-left, centre and bottom-right; 1/2 of it at the four corners and the centre), each
also flipped left-right: 18 images per source, resized to 224x224 (Lanczos), written as
JPEG quality 90. `calib/` and `heldout/` are disjoint by source image. Provenance (source
package and file, crop box, flip) and the licences go to data/natural/PROVENANCE.md.

Usage: pip install scikit-image matplotlib scikit-learn pillow
       python3 benches/make_natural_images.py [OUT_DIR]   (default data/natural)
"""
import os
import sys
from pathlib import Path

from PIL import Image, ImageOps
import matplotlib
import skimage
import sklearn

SIZE = 224
QUALITY = 90

SK = Path(skimage.__file__).parent / "data"
MPL = Path(matplotlib.get_data_path()) / "sample_data"
SKL = Path(sklearn.__file__).parent / "datasets" / "images"

SKI_PD = "scikit-image data; public domain / CC0 (per skimage.data docstring)"
# (package, file, licence)
CALIB = [
    ("scikit-image", SK / "chelsea.png", "CC0 (photographer Stefan van der Walt)"),
    ("scikit-image", SK / "rocket.jpg", "public domain (SpaceX)"),
    ("scikit-image", SK / "brick.png", "CC0 (CC0Textures)"),
    ("scikit-image", SK / "coins.png", "no known copyright restrictions (Brooklyn Museum)"),
]
HELDOUT = [
    ("scikit-image", SK / "astronaut.png", "public domain (NASA)"),
    ("scikit-image", SK / "coffee.png", "CC0 (photographer Rachel Michetti)"),
    ("scikit-image", SK / "camera.png", "CC0 (photographer Lav Varshney)"),
    ("scikit-image", SK / "hubble_deep_field.jpg", "public domain (NASA)"),
    ("scikit-image", SK / "ihc.png", "no known copyright restrictions"),
    ("scikit-image", SK / "retina.jpg", "CC0 1.0 (Wikimedia Commons)"),
    ("scikit-image", SK / "grass.png", "CC0 (CC0Textures)"),
    ("scikit-image", SK / "gravel.png", "CC0 (CC0Textures)"),
    ("scikit-image", SK / "clock_motion.png", "public domain (photographer Stefan van der Walt)"),
    ("scikit-image", SK / "cell.png", "CC0"),
    ("scikit-image", SK / "microaneurysms.png", "CC0 (Andreas Maier)"),
    ("matplotlib", MPL / "grace_hopper.jpg", "public domain (US Navy photograph)"),
    ("scikit-learn", SKL / "china.jpg", "CC BY 2.0 (danielbuechele, Flickr)"),
    ("scikit-learn", SKL / "flower.jpg", "CC BY 2.0 (vultilion, Flickr)"),
]


def boxes(w, h):
    """(label, (left, top, right, bottom)) square crops of the image."""
    s = min(w, h)
    out = []
    for frac, positions in (
        (1.0, ["c"]),
        (0.75, ["tl", "c", "br"]),
        (0.5, ["tl", "tr", "bl", "br", "c"]),
    ):
        side = int(round(s * frac))
        for p in positions:
            if p == "c":
                x, y = (w - side) // 2, (h - side) // 2
            else:
                x = 0 if p[1] == "l" else w - side
                y = 0 if p[0] == "t" else h - side
            out.append((f"s{int(frac * 100)}{p}", (x, y, x + side, y + side)))
    return out


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/natural")
    versions = {
        "scikit-image": skimage.__version__,
        "matplotlib": matplotlib.__version__,
        "scikit-learn": sklearn.__version__,
    }
    rows = []
    for split, sources in (("calib", CALIB), ("heldout", HELDOUT)):
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.jpg"):
            old.unlink()
        for pkg, path, licence in sources:
            img = Image.open(path).convert("RGB")
            for label, box in boxes(*img.size):
                crop = img.crop(box).resize((SIZE, SIZE), Image.LANCZOS)
                for flip in (False, True):
                    im = ImageOps.mirror(crop) if flip else crop
                    name = f"{path.stem}_{label}{'_flip' if flip else ''}.jpg"
                    im.save(d / name, quality=QUALITY)
                    rows.append((split, name, pkg, path.name, box, flip))
    with open(out / "PROVENANCE.md", "w") as f:
        f.write("# data/natural: provenance\n\n")
        f.write(
            "Made by `benches/make_natural_images.py` from images shipped inside Python "
            "packages ("
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + "). Each is a square crop of the source (box: left, top, right, bottom in "
            "source pixels), maybe flipped left-right, resized to 224x224 (Lanczos), "
            "JPEG quality 90. `calib/` and `heldout/` share no source image.\n\n"
        )
        f.write("## Sources and licences\n\n| split | package | file | licence |\n|---|---|---|---|\n")
        for split, sources in (("calib", CALIB), ("heldout", HELDOUT)):
            for pkg, path, licence in sources:
                f.write(f"| {split} | {pkg} | {path.name} | {licence} |\n")
        f.write(
            "\nscikit-image's sample data: licences as stated in `skimage.data`'s docstrings. "
            "matplotlib's `grace_hopper.jpg`: US Navy photograph, public domain. "
            "scikit-learn's `china.jpg` and `flower.jpg`: CC BY 2.0, attribution as in "
            "`sklearn/datasets/images/README.txt` (china.jpg: danielbuechele; flower.jpg: "
            "vultilion, Flickr).\n\n"
        )
        f.write("## Files\n\n| split | file | package | source | crop box | flipped |\n|---|---|---|---|---|---|\n")
        for split, name, pkg, src, box, flip in rows:
            f.write(f"| {split} | {name} | {pkg} | {src} | {box} | {'yes' if flip else 'no'} |\n")
    n = {s: sum(1 for r in rows if r[0] == s) for s in ("calib", "heldout")}
    print(f"wrote {n['calib']} calib and {n['heldout']} heldout images to {out}")


if __name__ == "__main__":
    main()
