"""Train / validation / test splits for the 192x192 default 2D model; every person in exactly one split.

Why three disjoint sets: the earlier default was validated *and* reported on the same 40 persons. Here
  * test (reporting only, never used for training or checkpoint choice): real labelled persons with GT boxes:
    COCO **val2017** persons of the COCO-MINI repository (github.com/Obmutescence/COCO-MINI, official
    ``person_keypoints_val2017.json`` subset, 79 images) + the mmpose-testdata held-out persons
    (4 COCO val2017 images, OCHuman, PoseTrack18 val, CrowdPose, MPII; see prunepose.distill.heldout);
  * validation (checkpoint choice): GT labels of the shared coco-mini train2017 images with an odd image id;
  * train: the pseudo-labelled persons of scripts/distill/pseudo_label.py minus the validation images; the
    coco-mini train2017 persons with an even image id keep their own GT labels (not the teacher's), the
    street video ``vtest`` is thinned to every ``--vtest-every``-th frame and still images are repeated.

Outputs under ``--out`` (default work_dirs/distill2): ``test/`` (``test.json`` + image links: nothing is
copied into the repo), ``val.json``, ``train.json``; prints the split sizes.

Usage: git clone https://github.com/Obmutescence/COCO-MINI /tmp/COCO-MINI   (commit 644f29e)
       python scripts/distill/build_splits.py --coco-mini-val /tmp/COCO-MINI
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
from pathlib import Path

from prunepose.distill.heldout import build_heldout
from prunepose.distill.pseudo_labels import coco_categories, repeat_sources


def _git_or_file(repo: Path, rel: str) -> bytes:
    """A file of the COCO-MINI checkout (work tree) or of a bare mirror (``git show HEAD:rel``)."""
    if (repo / rel).is_file():
        return (repo / rel).read_bytes()
    return subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{rel}"], check=True,
                          capture_output=True).stdout


def build_test(coco_mini_val: Path, data: Path, out: Path) -> dict:
    """COCO-MINI val2017 persons (>= 1 labelled keypoint, not crowd) + the mmpose held-out persons."""
    root = out / "test"
    (root / "coco-mini-val2017").mkdir(parents=True, exist_ok=True)
    link = root / "mmpose-testdata"
    if not link.exists():
        os.symlink((data / "mmpose-testdata").resolve(), link)
    val = json.loads(_git_or_file(coco_mini_val, "annotations/person_keypoints_val2017.json"))
    images, annotations = [], []
    keep = {}
    for a in val["annotations"]:
        if a["num_keypoints"] > 0 and not a["iscrowd"]:
            keep.setdefault(a["image_id"], []).append(a)
    for im in val["images"]:
        if im["id"] not in keep:
            continue
        dst = root / "coco-mini-val2017" / im["file_name"]
        if not dst.is_file():
            dst.write_bytes(_git_or_file(coco_mini_val, f"val2017/{im['file_name']}"))
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": f"coco-mini-val2017/{im['file_name']}", "width": im["width"],
                       "height": im["height"], "source": "coco_val2017",
                       "licence": f"Flickr licence id {im['license']}"})
        for a in keep[im["id"]]:
            annotations.append({**{k: a[k] for k in ("bbox", "area", "num_keypoints", "keypoints", "iscrowd")},
                                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1})
    held = build_heldout(data)
    offset = len(images)
    names = {im["file_name"] for im in images}
    for im in held["images"]:
        if im["file_name"] in names:
            raise SystemExit(f"{im['file_name']} twice in the test set")
        src = im["source"]
        images.append({**im, "id": im["id"] + offset, "source": "coco_val2017" if src == "coco" else src})
    for a in held["annotations"]:
        annotations.append({**a, "id": len(annotations) + 1, "image_id": a["image_id"] + offset})
    return {"info": {"description": "test persons: COCO val2017 (COCO-MINI + mmpose) and mmpose held-out"},
            "licenses": [], "categories": coco_categories(), "images": images, "annotations": annotations}


def split_coco_mini(data: Path) -> tuple[set[str], dict[str, list[dict]]]:
    """(file names of the validation images, GT annotations per train2017 file name) of shared coco-mini."""
    gt = json.loads((data / "coco-mini/annotations/person_keypoints_train2017.json").read_text())
    val_files = {im["file_name"] for im in gt["images"] if im["id"] % 2 == 1}
    by_file: dict[str, list[dict]] = collections.defaultdict(list)
    names = {im["id"]: im["file_name"] for im in gt["images"]}
    for a in gt["annotations"]:
        if a["num_keypoints"] > 0 and not a["iscrowd"]:
            by_file[names[a["image_id"]]].append(a)
    return val_files, by_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coco-mini-val", type=Path, required=True, help="checkout or bare mirror of COCO-MINI")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("work_dirs/distill2"))
    ap.add_argument("--vtest-every", type=int, default=2, help="keep every n-th vtest frame of the manifest")
    ap.add_argument("--repeat", type=int, default=4, help="repeats of the still-image persons")
    args = ap.parse_args()
    out = args.out
    test = build_test(args.coco_mini_val, args.data, out)
    (out / "test" / "test.json").write_text(json.dumps(test))

    val_files, gt_by_file = split_coco_mini(args.data)
    pseudo = json.loads((out / "pseudo_train.json").read_text())
    val = {"info": {"description": "validation: shared coco-mini train2017, odd image ids, GT labels"},
           "licenses": [], "categories": coco_categories(), "images": [], "annotations": []}
    train = {**pseudo, "images": [], "annotations": []}
    anns_by_image = collections.defaultdict(list)
    for a in pseudo["annotations"]:
        anns_by_image[a["image_id"]].append(a)
    vtest_seen = 0
    for im in pseudo["images"]:
        name = Path(im["file_name"]).name
        if im["source"] == "coco_mini":
            target = val if name in val_files else train
            new_id = len(target["images"]) + 1
            target["images"].append({**im, "id": new_id})
            for a in gt_by_file.get(name, []):  # the dataset's own labels, not the teacher's
                target["annotations"].append({**{k: a[k] for k in ("bbox", "area", "num_keypoints", "keypoints")},
                                              "iscrowd": 0, "category_id": 1, "image_id": new_id,
                                              "id": len(target["annotations"]) + 1})
            continue
        if im["source"] == "vtest":
            vtest_seen += 1
            if (vtest_seen - 1) % args.vtest_every:
                continue
        new_id = len(train["images"]) + 1
        train["images"].append({**im, "id": new_id})
        for a in anns_by_image[im["id"]]:
            train["annotations"].append({**a, "image_id": new_id, "id": len(train["annotations"]) + 1})
    repeats = {s: 1 if s == "vtest" else args.repeat for s in {im["source"] for im in train["images"]}}
    train = repeat_sources(train, repeats)
    (out / "val.json").write_text(json.dumps(val))
    (out / "train.json").write_text(json.dumps(train))
    for name, coco in (("test", test), ("val", val), ("train (after repeats)", train)):
        src = {im["id"]: im["source"] for im in coco["images"]}
        counts = collections.Counter(src[a["image_id"]] for a in coco["annotations"])
        print(f"{name}: {len(coco['images'])} images, {len(coco['annotations'])} persons {dict(counts)}")


if __name__ == "__main__":
    main()
