"""Gather every real person image available offline for distillation; write a manifest with provenance.

Output (under ``--out``, default ``work_dirs/distill``; never inside the package):
  images/<source>/...   frames extracted from videos (JPEG q95) and symlinks to existing images
  manifest.json         [{"file": relative path, "source", "licence", "origin", "width", "height",
                          "boxes": [[x, y, w, h], ...] or null (= find the person with the teacher)}]

Sources (licences as stated by each package / dataset README):
  coco_mini   shared/data/coco-mini train2017, GT person boxes (COCO CC BY 4.0 annotations, Flickr CC images)
  vtest       Debian opencv-doc vtest.avi (Apache-2.0 / BSD-3 OpenCV samples); boxes by MOG2 background
              subtraction + contours (static camera)
  opencv_doc  messi5.jpg, basketball1/2.png from opencv-doc (same licence), teacher-found person
  astronaut   prunepose's bundled astronaut.jpg (scikit-image, public domain), teacher-found person
  mmpose_*    mmpose-testdata images NOT used for evaluation (research-only: never copied into the repo):
              H36M frames (GT boxes), MPI-INF-3DHP frames, PoseTrack18 test-video frames, demo.mp4 frames
Held out (evaluation only, never gathered here): mmpose-testdata coco/, ochuman/, crowdpose/, mpii/,
posetrack18/images/val.

Usage: python scripts/distill/gather_images.py --opencv-doc /tmp/distill_pkgs/x/usr/share/doc/opencv-doc
(get it with `apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb x`).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np

OPENCV_LICENCE = "Apache-2.0 AND BSD-3-Clause (Debian opencv-doc 4.6.0 samples)"
MMPOSE_LICENCE = "research-only ({}); from open-mmlab/mmpose tests/data (Apache-2.0 repo)"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src.resolve(), dst)


def _entry(out: Path, file: Path, source: str, licence: str, origin: str, boxes: list | None) -> dict:
    image = cv2.imread(str(file))
    if image is None:
        raise SystemExit(f"unreadable image {file}")
    h, w = image.shape[:2]
    return {"file": str(file.relative_to(out)), "source": source, "licence": licence, "origin": origin,
            "width": w, "height": h, "boxes": boxes}


def coco_mini(data: Path, out: Path) -> list[dict]:
    root = data / "coco-mini"
    ann = json.loads((root / "annotations/person_keypoints_train2017.json").read_text())
    boxes: dict[int, list] = {}
    for a in ann["annotations"]:
        x, y, w, h = a["bbox"]
        if a["iscrowd"] or a["category_id"] != 1 or min(w, h) < 16 or w * h < 32 * 32:
            continue
        boxes.setdefault(a["image_id"], []).append([x, y, w, h])
    entries = []
    for im in ann["images"]:
        src = root / "train2017" / im["file_name"]
        if not src.is_file() or im["id"] not in boxes:
            continue
        dst = out / "images/coco_mini" / im["file_name"]
        _link(src, dst)
        entries.append(_entry(out, dst, "coco_mini", f"COCO annotations CC BY 4.0; Flickr licence id {im['license']}",
                              f"COCO train2017 {im['file_name']}", boxes[im["id"]]))
    return entries


def vtest_boxes(video: Path, out: Path, every: int = 3, warmup: int = 40) -> list[dict]:
    """Pedestrian boxes of vtest.avi by MOG2 foreground blobs (the camera is static)."""
    cap = cv2.VideoCapture(str(video))
    mog = cv2.createBackgroundSubtractorMOG2(history=300, varThreshold=25, detectShadows=True)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    entries, index = [], -1
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        index += 1
        fg = mog.apply(frame)
        if index < warmup or index % every:
            continue
        mask = (fg == 255).astype(np.uint8) * 255  # 127 = shadow
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.dilate(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2), kernel)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            if h >= 60 and w >= 18 and 1.3 <= h / w <= 4.5:
                boxes.append([float(x), float(y), float(w), float(h)])
        if not boxes:
            continue
        dst = out / f"images/vtest/frame_{index:04d}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        entries.append(_entry(out, dst, "vtest", OPENCV_LICENCE, f"vtest.avi frame {index}", boxes))
    return entries


def video_frames(video: Path, out: Path, source: str, licence: str, every: int = 1) -> list[dict]:
    cap = cv2.VideoCapture(str(video))
    entries, index = [], -1
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        index += 1
        if index % every:
            continue
        dst = out / f"images/{source}/frame_{index:04d}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dst), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        entries.append(_entry(out, dst, source, licence, f"{video.name} frame {index}", None))
    return entries


def linked(files: list[Path], out: Path, source: str, licence: str, boxes: dict | None = None) -> list[dict]:
    entries = []
    for f in files:
        dst = out / "images" / source / f.name
        _link(f, dst)
        entries.append(_entry(out, dst, source, licence, str(f), (boxes or {}).get(f.name)))
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="shared data folder")
    ap.add_argument("--opencv-doc", required=True, help="extracted opencv-doc usr/share/doc/opencv-doc folder")
    ap.add_argument("--out", default="work_dirs/distill")
    args = ap.parse_args()
    data, out, cvdoc = Path(args.data), Path(args.out), Path(args.opencv_doc) / "examples/data"
    out.mkdir(parents=True, exist_ok=True)
    mm = data / "mmpose-testdata"
    entries = coco_mini(data, out)
    entries += vtest_boxes(cvdoc / "vtest.avi", out)
    entries += linked([cvdoc / "messi5.jpg", cvdoc / "basketball1.png", cvdoc / "basketball2.png"], out,
                      "opencv_doc", OPENCV_LICENCE)
    entries += linked([Path("src/prunepose/assets/astronaut.jpg")], out, "astronaut",
                      "public domain (NASA, via scikit-image)")
    h36m = json.loads((mm / "h36m/h36m_coco.json").read_text())
    by_id = {im["id"]: im["file_name"] for im in h36m["images"]}
    h36m_boxes = {by_id[a["image_id"]]: [a["bbox"]] for a in h36m["annotations"]}
    entries += linked(sorted(mm.glob("h36m/S*/*/*.jpg")), out, "mmpose_h36m", MMPOSE_LICENCE.format("Human3.6M"),
                      h36m_boxes)
    entries += linked(sorted(mm.glob("mpi_inf_3dhp/*.jpg")), out, "mmpose_3dhp",
                      MMPOSE_LICENCE.format("MPI-INF-3DHP"))
    entries += linked(sorted(mm.glob("posetrack18/videos/000001_mpiinew_test/*.jpg")), out, "mmpose_posetrack_video",
                      MMPOSE_LICENCE.format("PoseTrack18 test video, not the val frames used for evaluation"))
    entries += video_frames(mm / "demo/demo.mp4", out, "mmpose_demo", MMPOSE_LICENCE.format("mmpose demo clip"))
    (out / "manifest.json").write_text(json.dumps(entries, indent=1))
    counts: dict[str, list[int]] = {}
    for e in entries:
        c = counts.setdefault(e["source"], [0, 0])
        c[0] += 1
        c[1] += len(e["boxes"]) if e["boxes"] else 1
    for k, (n_img, n_box) in counts.items():
        print(f"{k:24s} images {n_img:4d}  candidate persons {n_box:5d}")


if __name__ == "__main__":
    main()
