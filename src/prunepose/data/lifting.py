"""Clip datasets for 2D-to-3D lifting (seq2seq chunks and seq2frame windows) and the pose flip.

Each sample is a dict of tensors:

* ``pose2d`` (F, 17, 2 or 3) float32: normalised screen coordinates (``px / w * 2 - [1, h / w]``), plus a
  confidence channel of ones with ``with_confidence=True`` (MotionBERT-style 3-channel input);
* ``pose3d`` (F, 17, 3) float32: camera frame, metres, VideoPose3D convention (joint 0 absolute,
  joints 1..16 relative to it; zero the root before a loss or a metric);
* ``valid`` (F,) bool: False on frames that are edge-padding copies;
* ``meta``: ``subject``, ``action`` (canonical), ``sequence``, ``camera``, ``start`` (first frame, may be
  negative when padded), ``flipped``, and ``center`` (window index of the target frame, seq2frame only).

Augmentation: with ``train=True`` (and ``flip`` not False) each sample is mirrored with probability 0.5
(`flip_poses` on both 2D and 3D). On sequences that carry detections (``keypoints="sh"``), a training
sample takes the projected ground truth instead with probability ``gt2d_prob``, plus Gaussian pixel noise of
``gt2d_noise_px``: the lifter then learns both clean and detector-like 2D (a user feeds it either).
The randomness comes from ``np.random.default_rng((seed, epoch, index))`` as in the 2D datasets; call
``set_epoch`` every epoch. Test-time flip averaging is the caller's job
(``flip_poses`` on the input, then on the output).
"""
from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from prunepose.data.h36m import JOINTS_LEFT, JOINTS_RIGHT, H36MLifting, H36MSequence
from prunepose.errors import ConfigError
from prunepose.geometry.camera import normalize_screen

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def flip_poses(poses: ArrayT, joints_left: tuple[int, ...] = JOINTS_LEFT,
               joints_right: tuple[int, ...] = JOINTS_RIGHT) -> ArrayT:
    """Mirror poses (..., J, C) horizontally: negate x (channel 0) and swap left/right joints.

    Valid for normalised 2D (the image centre is x = 0) and for camera-frame 3D (mirror through the
    camera's y-z plane); extra channels (confidence, y, z) are kept. Returns a new array/tensor.
    """
    out = poses.clone() if isinstance(poses, torch.Tensor) else np.array(poses, copy=True)
    out[..., 0] = -out[..., 0]
    left, right = list(joints_left), list(joints_right)
    out[..., left + right, :] = out[..., right + left, :]
    return out


class _LiftingClips(Dataset):
    """Shared machinery: window indices -> sample dict, flip augmentation, per-sample RNG."""

    def __init__(self, data: H36MLifting, num_frames: int, *, train: bool, flip: bool | None = None,
                 seed: int = 0, with_confidence: bool = False, gt2d_prob: float = 0.0,
                 gt2d_noise_px: float = 0.0) -> None:
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        if not 0.0 <= gt2d_prob <= 1.0:
            raise ConfigError(f"data.gt2d_prob must be in [0, 1], got {gt2d_prob}")
        if not gt2d_noise_px >= 0.0:
            raise ConfigError(f"data.gt2d_noise_px must be >= 0 pixels, got {gt2d_noise_px}")
        self.gt2d_prob = float(gt2d_prob)
        self.gt2d_noise_px = float(gt2d_noise_px)
        self.data = data
        self.num_frames = int(num_frames)
        self.train = bool(train)
        self.flip = self.train if flip is None else bool(flip)
        self.seed = int(seed)
        self.epoch = 0
        self.with_confidence = bool(with_confidence)
        # (sequence index, first frame) of every sample; filled by subclasses
        self._windows = np.zeros((0, 2), dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream: sample ``i`` of epoch ``e`` uses rng ``(seed, e, i)``."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, int(index)))

    def __len__(self) -> int:
        return len(self._windows)

    def _meta_extra(self, start: int) -> dict[str, Any]:
        return {}

    def _pose2d(self, seq: H36MSequence, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Normalised 2D of ``frames``: the sequence's own (detections or projection), or, in training on
        detections, the projected ground truth (+ noise) with probability ``gt2d_prob``."""
        if not (self.train and seq.keypoints_px is not None and self.gt2d_prob > 0.0
                and rng.random() < self.gt2d_prob):
            return seq.pose2d(frames)
        px = seq.projected_px(frames)
        if self.gt2d_noise_px > 0.0:
            px = px + rng.normal(0.0, self.gt2d_noise_px, px.shape).astype(np.float32)
        return normalize_screen(px, seq.camera.width, seq.camera.height).astype(np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self._windows):
            raise IndexError(f"index {index} out of range for {len(self._windows)} samples")
        seq_idx, start = (int(v) for v in self._windows[index])
        seq: H36MSequence = self.data.sequences[seq_idx]
        raw = np.arange(start, start + self.num_frames)
        frames = np.clip(raw, 0, seq.num_frames - 1)  # edge-replicate padding
        rng = self.rng(index)
        flip_draw = rng.random()  # first draw: the flip (the stream every sample had before mixing existed)
        pose2d = self._pose2d(seq, frames, rng)
        pose3d = seq.pose3d_camera(frames)
        flipped = bool(self.flip and self.train and flip_draw < 0.5)
        if flipped:
            pose2d, pose3d = flip_poses(pose2d), flip_poses(pose3d)
        if self.with_confidence:
            pose2d = np.concatenate([pose2d, np.ones(pose2d.shape[:-1] + (1,), dtype=np.float32)], axis=-1)
        meta = {"subject": seq.subject, "action": seq.action, "sequence": seq.sequence, "camera": seq.camera_id,
                "start": start, "flipped": flipped, **self._meta_extra(start)}
        return {
            "pose2d": torch.from_numpy(np.ascontiguousarray(pose2d, dtype=np.float32)),
            "pose3d": torch.from_numpy(np.ascontiguousarray(pose3d, dtype=np.float32)),
            "valid": torch.from_numpy((raw >= 0) & (raw < seq.num_frames)),
            "meta": meta,
        }


def seq2seq_starts(length: int, num_frames: int) -> np.ndarray:
    """First frames of the stride-``num_frames`` chunks covering a sequence of ``length`` frames.

    MixSTE/HoT (``ChunkedGenerator`` with ``chunk_length = stride = F``): ``n = ceil(T / F)`` chunks, shifted
    left by ``(n F - T) // 2`` so the padding is split between both ends; a sequence shorter than F gives
    one chunk centred on it. Out-of-range frames are edge-replicated by the dataset.
    """
    n = -(-length // num_frames)
    offset = (n * num_frames - length) // 2
    return np.arange(n, dtype=np.int64) * num_frames - offset


class Seq2SeqClips(_LiftingClips):
    """Non-overlapping F-frame chunks of every sequence (seq2seq training and testing, MixSTE/HoT)."""

    def __init__(self, data: H36MLifting, num_frames: int = 243, *, train: bool, flip: bool | None = None,
                 seed: int = 0, with_confidence: bool = False, **mix: float) -> None:
        super().__init__(data, num_frames, train=train, flip=flip, seed=seed, with_confidence=with_confidence,
                         **mix)
        rows = [np.stack([np.full(len(s), i), s], axis=1)
                for i, seq in enumerate(data.sequences) for s in [seq2seq_starts(seq.num_frames, self.num_frames)]]
        self._windows = np.concatenate(rows) if rows else self._windows


class Seq2FrameClips(_LiftingClips):
    """One F-frame window per frame, centred on it with edge-replicate padding (seq2frame, TPC models).

    The target frame sits at ``meta['center'] = (F - 1) // 2``; ``pose3d`` covers the whole window because
    TPC training supervises every kept frame, not only the centre.
    """

    def __init__(self, data: H36MLifting, num_frames: int = 243, *, train: bool, flip: bool | None = None,
                 seed: int = 0, with_confidence: bool = False, **mix: float) -> None:
        if num_frames % 2 != 1:
            raise ConfigError(f"seq2frame windows need an odd num_frames (a centre frame), got {num_frames}")
        super().__init__(data, num_frames, train=train, flip=flip, seed=seed, with_confidence=with_confidence,
                         **mix)
        half = (self.num_frames - 1) // 2
        rows = [np.stack([np.full(seq.num_frames, i), np.arange(seq.num_frames) - half], axis=1)
                for i, seq in enumerate(data.sequences)]
        self._windows = np.concatenate(rows).astype(np.int64) if rows else self._windows

    def _meta_extra(self, start: int) -> dict[str, Any]:
        return {"center": (self.num_frames - 1) // 2}


__all__ = ["Seq2FrameClips", "Seq2SeqClips", "flip_poses", "seq2seq_starts"]
