"""The top-down evaluation chain end to end without a model: ground-truth targets -> DARK decoding -> inverse
crop affine -> rescoring/OKS-NMS -> pycocotools. If any frame convention in the chain were off by a pixel
or a flip, AP would fall well below 1."""
from __future__ import annotations

import numpy as np
import pytest

from prunepose.codecs.heatmap import HeatmapCodec
from prunepose.data.coco import CocoTopDownDataset
from prunepose.data.mpii import MpiiDataset
from prunepose.metrics.coco_eval import evaluate_coco_keypoints, postprocess_topdown
from prunepose.paths import shared_data_dir
from prunepose.tasks.topdown import evaluate_mpii

DATA = shared_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="shared data folder (../shared/data) not available")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gt_heatmaps_decode_back_to_ap_one() -> None:
    root = DATA / "coco-mini"
    ds = CocoTopDownDataset(root / "annotations/person_keypoints_train2017.json", root / "train2017",
                            train=False, skip_missing_images=True)
    codec = HeatmapCodec(ds.input_size, ds.heatmap_size, 2.0)
    samples = [ds[i] for i in range(len(ds))]
    heatmaps = np.stack([s["target"].numpy() for s in samples])
    centers = np.stack([s["meta"]["center"].numpy() for s in samples])
    scales = np.stack([s["meta"]["scale"].numpy() for s in samples])
    coords, scores = codec.decode_to_image(heatmaps, centers, scales)
    # decoded positions of labelled keypoints are within a small fraction of a pixel of the annotation
    ann = {a["id"]: a for a in ds.coco.dataset["annotations"]}
    errors = []
    for s, c in zip(samples, coords):
        kp = np.asarray(ann[s["meta"]["ann_id"]]["keypoints"], dtype=float).reshape(-1, 3)
        inside = (kp[:, 2] > 0) & (s["target_weight"].numpy()[:, 0] > 0)
        errors.append(np.linalg.norm(c[inside] - kp[inside, :2], axis=1))
    err = np.concatenate(errors)
    assert np.median(err) < 0.25 and np.percentile(err, 95) < 1.0, (np.median(err), err.max())
    meta = {"scores": scores, "box_scores": np.ones(len(samples)), "areas": scales[:, 0] * scales[:, 1],
            "image_ids": np.array([s["meta"]["image_id"] for s in samples])}
    results = postprocess_topdown(coords, meta)
    stats = evaluate_coco_keypoints(ds.coco, results, image_ids=ds.image_ids)
    assert stats["AP"] > 0.97, stats.summary


def test_mpii_pckh_wiring_gt_is_perfect(tmp_path) -> None:
    root = DATA / "mmpose-testdata" / "mpii"
    probe = MpiiDataset(root / "test_mpii.json", root, train=False)
    # head box around head top (9) and upper neck (8): a plausible stand-in for the official boxes
    top, neck = probe.joints[:, 9], probe.joints[:, 8]
    boxes = np.stack([np.minimum(top, neck) - 10, np.maximum(top, neck) + 10], axis=1)
    np.save(tmp_path / "heads.npy", boxes)
    ds = MpiiDataset(root / "test_mpii.json", root, train=False, headboxes=tmp_path / "heads.npy")
    n = len(ds)
    perfect = evaluate_mpii(ds, {"preds": ds.joints.copy(), "index": np.arange(n)})
    assert perfect["Mean"] == pytest.approx(100.0)
    # shift every joint by 0.6 head sizes: beyond the 0.5 threshold -> 0
    far = ds.joints + (0.6 * ds.head_sizes())[:, None, None] * np.array([1.0, 0.0])
    assert evaluate_mpii(ds, {"preds": far, "index": np.arange(n)})["Mean"] == pytest.approx(0.0)
