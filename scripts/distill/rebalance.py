"""Repeat the persons of the still-image sources so the street video does not dominate training.

Usage: python scripts/distill/rebalance.py [--out work_dirs/distill] [--repeat 4] [--video-sources vtest]
Reads <out>/pseudo_train.json, writes <out>/pseudo_train_balanced.json (what configs/distill trains on).
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from prunepose.distill.pseudo_labels import repeat_sources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="work_dirs/distill")
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--video-sources", nargs="*", default=["vtest"])
    args = ap.parse_args()
    out = Path(args.out)
    coco = json.loads((out / "pseudo_train.json").read_text())
    sources = {im.get("source", "") for im in coco["images"]}
    repeats = {s: 1 if s in args.video_sources else args.repeat for s in sources}
    balanced = repeat_sources(coco, repeats)
    (out / "pseudo_train_balanced.json").write_text(json.dumps(balanced))
    src = {im["id"]: im["source"] for im in balanced["images"]}
    print(dict(collections.Counter(src[a["image_id"]] for a in balanced["annotations"])))


if __name__ == "__main__":
    main()
