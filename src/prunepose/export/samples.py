"""Real inputs for checking an exported graph against PyTorch.

Why real rather than random inputs: token pruning selects by attention / frame density, and random inputs
give flat, near-tied scores where a TopK can legitimately order tokens differently in two float
implementations; real crops and real 2D tracks exercise the selection the way deployment does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import PrunePoseError

ASSET_IMAGE = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


def image_crops(config: Any, batch: int, image_path: str | Path = ASSET_IMAGE) -> np.ndarray:
    """(batch, 3, H, W) float32 normalised crops of a real image at the model's input size.

    Crop ``i`` is the whole image shrunk by ``8 * i`` percent around its centre (different crops, hence
    different pruning, per batch element), cut with the same affine/normalisation as the datasets.
    """
    import cv2

    from prunepose.data.transforms import box_to_center_scale, get_affine_transform, normalize_image, warp_image

    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise PrunePoseError(f"{image_path}: cannot read the image")
    w_in, h_in = config.input_size
    h, w = image.shape[:2]
    crops = []
    for i in range(batch):
        f = 1.0 - 0.08 * (i % 8)
        box = [w * (1 - f) / 2, h * (1 - f) / 2, w * f, h * f]
        center, scale = box_to_center_scale(box, w_in / h_in)
        mat = get_affine_transform(center, scale, 0.0, (w_in, h_in))
        crops.append(normalize_image(warp_image(image, mat, (w_in, h_in))))
    return np.stack(crops).astype(np.float32)


def h36m_clips(config: Any, batch: int, root: str | Path | None = None) -> np.ndarray | None:
    """(batch, F, 17, C_in) float32 normalised 2D clips of real Stacked-Hourglass detections (S9 Walking,
    camera 54138969, consecutive windows), or ``None`` when the shared Human3.6M data is absent.

    Normalisation is the training one (`H36MSequence.pose2d`); a third channel is all-ones confidence.
    """
    from prunepose.data.h36m import load_h36m_shared
    from prunepose.errors import DataError
    from prunepose.paths import shared_data_dir

    if root is None:
        base = shared_data_dir()
        if base is None or not (base / "h36m").is_dir():
            return None
        root = base / "h36m"
    try:
        data = load_h36m_shared(root, subjects=("S9",), keypoints="sh", camera_ids=("54138969",),
                                actions=("Walking",), warn=False)
    except DataError:
        return None
    if not data.sequences:
        return None
    seq = data.sequences[0]
    f = config.num_frames
    clips = []
    for i in range(batch):
        frames = np.clip(np.arange(i * f, (i + 1) * f), 0, seq.num_frames - 1)
        pose = seq.pose2d(frames)
        if config.in_channels == 3:
            pose = np.concatenate([pose, np.ones(pose.shape[:-1] + (1,), dtype=np.float32)], axis=-1)
        clips.append(pose)
    return np.stack(clips).astype(np.float32)


__all__ = ["ASSET_IMAGE", "h36m_clips", "image_crops"]
