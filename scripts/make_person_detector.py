"""Build the bundled person detector ``assets/weights/person_detector_yolox_nano.onnx`` from its source file.

Source (see ``src/prunepose/assets/README.md``): ``model/yolox_nano.onnx`` of the GitHub repository
Kazuhito00/YOLOX-ONNX-TFLite-Sample (Apache-2.0), commit 3d4f1119d0694200671c08069ecb847aa0d8495a (file last
changed in 0f785c070ce8da070aeaeef46c0da7904ff7012e), which is the official Megvii YOLOX-Nano COCO weights
(release 0.1.1rc0, ``yolox_nano.pth``, Apache-2.0) exported with YOLOX's own ``tools/export_onnx.py`` at
416x416, opset 11. Get it with ``git show <commit>:model/yolox_nano.onnx > yolox_nano.onnx`` in a clone.

The only change: the input's height and width (and the output's cell count) become symbolic dimensions.
The graph is convolutions, SiLU, max-pools, resizes by a scale factor and reshapes to ``(1, 85, -1)``, so
it already computes correctly at any size that is a multiple of 32; only the declared shapes were fixed.
The script checks that the rewritten graph gives the original's output bit for bit at 416x416 on a random
0..255 input, and that a 640x480 input yields the (80x60 + 40x30 + 20x15) cells YOLOX's grid expects.

    python scripts/make_person_detector.py yolox_nano.onnx
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

SOURCE_SHA256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
OUT = Path(__file__).resolve().parents[1] / "src" / "prunepose" / "assets" / "weights" / \
    "person_detector_yolox_nano.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="yolox_nano.onnx of the source repository (see above)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort

    src = Path(args.source)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{src}: sha256 {digest} is not the recorded source file's {SOURCE_SHA256}")
    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 416, 416], "unexpected input shape"
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "cells"
    del model.graph.value_info[:]  # inferred intermediate shapes were for 416x416 only
    onnx.checker.check_model(model)
    out = Path(args.out)
    onnx.save(model, str(out))

    rng = np.random.default_rng(0)
    x416 = rng.integers(0, 256, (1, 3, 416, 416)).astype(np.float32)
    a = ort.InferenceSession(str(src)).run(None, {"images": x416})[0]
    new = ort.InferenceSession(str(out))
    b = new.run(None, {"images": x416})[0]
    assert np.array_equal(a, b), "rewritten graph differs from the source at 416x416"
    cells = new.run(None, {"images": rng.integers(0, 256, (1, 3, 480, 640)).astype(np.float32)})[0].shape[1]
    assert cells == 80 * 60 + 40 * 30 + 20 * 15, cells
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()})")


if __name__ == "__main__":
    main()
