"""2D keypoint tracks -> 3D poses with a trained lifter (HoT-MixSTE by default): :class:`Lifter3D`.

Why a class around the models: a lifter is trained on fixed-length, screen-normalised H36M-17 clips; a
user has a track of any length, in pixels, in the detector's layout, with gaps. This module does the
bookkeeping between the two and nothing else:

1. check the input and the image size (errors name the argument);
2. convert the layout to H36M-17 (`prunepose.api.layouts`) and fill missing joints over time
   (`prunepose.api.gaps`);
3. normalise to the screen (`prunepose.geometry.camera.normalize_screen`, as in training);
4. cut the sequence into model windows of F frames (below), run them with the flip test
   (`prunepose.tasks.lifting.predict_clip`, the evaluation code) and stitch the outputs.

Windows (seq2seq models, e.g. HoT-MixSTE): T <= F: one window, edge-padded on both sides exactly as the
test clips (`prunepose.data.lifting.seq2seq_starts`), the padding cut off the output. T > F: windows at
0, F, 2F, ...; when T is not a multiple of F the last window is aligned to the end (frames T-F .. T-1)
and only its frames not covered before are used, so every output frame comes from a full, unpadded window.
Seq2frame (TPC) models: one window centred on every frame (edge-padded), its centre output kept.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunepose.api.gaps import fill_missing, missing_mask
from prunepose.api.layouts import check_layout, scores_to_h36m, source_names, to_h36m
from prunepose.api.results3d import Results3D
from prunepose.errors import PrunePoseError
from prunepose.paths import bundled_weights
from prunepose.pruning.temporal import TIE_BREAKS
from prunepose.skeletons import H36M17, get_skeleton

DEFAULT_WEIGHTS = "lifter3d_default"

__all__ = ["Lifter3D", "Results3D", "Window", "load_lifter", "plan_windows"]


# ------------------------------------------------------------------------------------------ the model


def _describe_from_work_dir(checkpoint: Path) -> tuple[str, dict[str, Any]] | None:
    """(model name, overrides) from the ``config.yaml`` that `prunepose train` writes beside its checkpoints."""
    cfg_path = checkpoint.parent / "config.yaml"
    if checkpoint.suffix != ".pt" or not cfg_path.is_file():
        return None
    from prunepose.config import load_config

    cfg = load_config(cfg_path)
    return str(cfg["model"]), dict(cfg.get("model_overrides") or {})


def load_lifter(model: str | nn.Module | None = None, checkpoint: str | Path | None = None) -> nn.Module:
    """The lifter to run, in eval mode.

    * nothing: the bundled default (`prunepose.weights.model_from_weights` on ``lifter3d_default``);
    * ``checkpoint`` only: the architecture from the JSON beside it (`prunepose.weights.save_weights`),
      or from the ``config.yaml`` of the training work dir it sits in;
    * ``model`` (registry name or experiment YAML) + ``checkpoint``: that architecture, those weights;
    * an ``nn.Module``: used as is (weights already loaded).

    A registry name without weights is refused: random weights would give confident nonsense.
    """
    from prunepose.weights import load_weights, model_from_weights

    if isinstance(model, nn.Module):
        if checkpoint is not None:
            load_weights(model, checkpoint)
        net = model
    elif model is None and checkpoint is None:
        path = bundled_weights(DEFAULT_WEIGHTS)
        if not path.is_file():
            raise PrunePoseError(f"the bundled default lifter {path} is missing from this installation; pass "
                                 "model=/checkpoint= (see scripts/export_default_lifter.py)")
        net = model_from_weights(path)
    elif checkpoint is None:
        raise PrunePoseError(f"model {model!r} needs weights: pass checkpoint= (a .pt or .safetensors file); "
                             "Lifter3D() with no arguments uses the bundled default")
    else:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise PrunePoseError(f"checkpoint not found: {checkpoint}")
        net = _build(model, checkpoint)
        load_weights(net, checkpoint)
    if not hasattr(getattr(net, "config", None), "num_frames"):
        raise PrunePoseError(f"{type(net).__name__} is not a 2D->3D lifter (its config has no num_frames)")
    if net.config.num_joints != H36M17.num_keypoints:
        raise PrunePoseError(f"{net.config.name} lifts {net.config.num_joints} joints; Lifter3D feeds the 17 "
                             "Human3.6M joints")
    return net.eval()


def _build(model: str | None, checkpoint: Path) -> nn.Module:
    """Build the architecture for ``checkpoint`` (see `load_lifter`), randomly initialised."""
    from prunepose.registry import create_model
    from prunepose.weights import model_from_weights, read_weights_info

    if model is not None and str(model).endswith((".yaml", ".yml")):
        from prunepose.config import load_config

        cfg = load_config(model)
        return create_model(cfg["model"], **cfg["model_overrides"])
    if checkpoint.with_suffix(".json").is_file():
        name = read_weights_info(checkpoint)["name"]
        if model is not None and model != name:
            raise PrunePoseError(f"{checkpoint.with_suffix('.json')} describes model {name!r}, not {model!r}")
        return model_from_weights(checkpoint)
    described = _describe_from_work_dir(checkpoint)
    if described is not None and model in (None, described[0]):
        return create_model(described[0], **described[1])
    if model is None:
        raise PrunePoseError(f"{checkpoint}: no model description beside it (no .json, no work-dir config.yaml); "
                             "pass the model name or the experiment YAML it was trained with")
    return create_model(str(model))


# ------------------------------------------------------------------------------------------ windows


class Window:
    """One model input: ``frames`` (F,) sequence indices (edge-clipped), and which of its outputs to keep:
    window positions ``take`` filling sequence frames ``into``."""

    __slots__ = ("frames", "into", "take")

    def __init__(self, frames: np.ndarray, take: np.ndarray, into: np.ndarray) -> None:
        self.frames, self.take, self.into = frames, take, into


def plan_windows(length: int, num_frames: int, seq2frame: bool = False) -> list[Window]:
    """The windows that cover a sequence of ``length`` frames (see the module docstring)."""
    from prunepose.data.lifting import seq2seq_starts

    f = int(num_frames)
    if seq2frame:
        half = (f - 1) // 2
        return [Window(np.clip(np.arange(t - half, t - half + f), 0, length - 1), np.array([half]), np.array([t]))
                for t in range(length)]
    if length <= f:
        start = int(seq2seq_starts(length, f)[0])
        frames = np.clip(np.arange(start, start + f), 0, length - 1)
        return [Window(frames, np.arange(-start, -start + length), np.arange(length))]
    starts = list(range(0, length - f + 1, f))
    if starts[-1] + f < length:
        starts.append(length - f)
    windows, covered = [], 0
    for s in starts:
        into = np.arange(max(covered, s), s + f)
        windows.append(Window(np.arange(s, s + f), into - s, into))
        covered = s + f
    return windows


# ------------------------------------------------------------------------------------------ input checks


def _check_image_size(image_size: Any) -> tuple[float, float]:
    try:
        w, h = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise PrunePoseError(f"image_size must be (width, height) in pixels, got {image_size!r}") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise PrunePoseError(f"image_size must be two finite positive numbers (width, height), got ({w}, {h})")
    return w, h


def _as_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PrunePoseError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    return arr


def _check_keypoints(keypoints2d: Any, scores: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(T, J, 2) float64 keypoints and (T, J) scores or None; a (T, J, 3) array carries its scores."""
    kpts = _as_array(keypoints2d, "keypoints2d")
    if kpts.ndim != 3 or kpts.shape[-1] not in (2, 3):
        hint = " (one frame: pass keypoints[None])" if kpts.ndim == 2 else ""
        raise PrunePoseError(f"keypoints2d must have shape (T, J, 2) or (T, J, 3) = x, y, score; "
                             f"got {tuple(kpts.shape)}{hint}")
    if kpts.shape[0] < 1:
        raise PrunePoseError("keypoints2d is empty (T = 0 frames)")
    if kpts.shape[-1] == 3:
        if scores is not None:
            raise PrunePoseError("keypoints2d has a score channel (T, J, 3) and scores= was given too; pass one")
        kpts, scores = kpts[..., :2], kpts[..., 2]
    if scores is not None:
        scores = _as_array(scores, "scores")
        if scores.shape != kpts.shape[:2]:
            raise PrunePoseError(f"scores must have shape (T, J) = {kpts.shape[:2]}, got {tuple(scores.shape)}")
    return kpts, scores


#: A joint further than this many frame sizes outside the frame is not a pixel coordinate of that frame.
#: Lifters are trained on joints inside the frame (normalised to [-1, 1]); a person partly out of view puts
#: joints beyond the border, but not a whole frame beyond it. 1e30 px overflowed float32 to NaN poses.
OUTSIDE_FRAMES = 1.0

#: Frames whose joints all lie within this many pixels of each other carry no pose (all-zero rows are how
#: several tools write "no detection"); the lifter would turn them into a plausible-looking average pose.
MIN_EXTENT_PX = 2.0


def _outside_as_missing(kpts: np.ndarray, w: float, h: float, layout: str) -> np.ndarray:
    """``kpts`` with finite joints further than `OUTSIDE_FRAMES` frame sizes outside the ``w`` x ``h`` frame set
    to NaN (missing, so they are interpolated and flagged in ``filled``), with a warning naming the first.

    Why missing rather than an error: a 2D model puts the odd unconfident joint at an absurd place (random or
    undertrained weights, a person half out of view), and the rest of the track is still worth lifting. When
    most joints are that far out the input is not pixels of this frame (wrong ``image_size`` or units): error.
    """
    size = np.array([w, h])
    finite = np.isfinite(kpts).all(axis=-1)  # NaN/inf mark a missing joint already, never "far"
    with np.errstate(invalid="ignore"):
        far = finite & (np.abs(kpts - size / 2) > size / 2 + OUTSIDE_FRAMES * size).any(axis=-1)
    if not far.any():
        return kpts
    t, j = (int(v[0]) for v in np.nonzero(far))
    x, y = kpts[t, j]
    names = get_skeleton(layout).keypoint_names  # layouts are named after their skeletons
    where = (f"{int(far.sum())} of {int(finite.sum())} joint(s) lie more than a frame size outside the "
             f"{w:g}x{h:g} frame (first: frame {t}, joint {names[j]!r} at ({x:.4g}, {y:.4g}) px)")
    if far.sum() > 0.5 * finite.sum():
        raise PrunePoseError(f"keypoints2d: {where}; check image_size (--image-size) and that the keypoints are "
                             "pixels")
    warnings.warn(f"keypoints2d: {where}; treated as missing and interpolated", stacklevel=3)
    return np.where(far[..., None], np.nan, kpts)


def _check_extent(h36m: np.ndarray) -> None:
    """Warn about (or, when every frame is one, refuse) frames whose joints collapse onto one spot."""
    extent = np.ptp(h36m, axis=1).max(axis=-1)  # (T,) largest of the x and y spans of each frame's joints
    flat = np.flatnonzero(extent < MIN_EXTENT_PX)
    if len(flat) == len(extent):
        raise PrunePoseError(f"keypoints2d: in every frame all joints lie within {MIN_EXTENT_PX:g} px of each other "
                             "(all zeros?): there is no pose to lift; mark missing joints as NaN or with low scores")
    if len(flat):
        warnings.warn(f"keypoints2d: {len(flat)} of {len(extent)} frame(s) have all joints within "
                      f"{MIN_EXTENT_PX:g} px of each other (all zeros?), first {flat[:5].tolist()}: their 3D poses "
                      "are meaningless; mark missing joints as NaN or with low scores to interpolate them",
                      stacklevel=3)


# ------------------------------------------------------------------------------------------ the lifter


class Lifter3D:
    """Lift 2D keypoint tracks (pixels) of one person to 3D poses (metres, camera frame, root-relative).

    ``Lifter3D()`` loads the bundled compact HoT-MixSTE (trained on Human3.6M: non-commercial research
    only); ``Lifter3D(model, checkpoint)`` any other lifter (see `load_lifter`).

    Args:
        flip: average with the mirrored input's mirrored output (the flip test of the evaluation).
        batch_size: model windows per forward pass.
        min_score: with scores, joints scoring below this count as missing (and are interpolated);
            ``None`` (default) keeps every finite joint, as the official demos do.
        tie_break: how HoT's frame selection (DPC-kNN) breaks exact density ties, which with k = 2 are
            common (two frames that are each other's nearest neighbour): ``"index"`` (default, the lower
            frame wins: deterministic, independent of batching, the rule of the exported ONNX graphs) or
            ``"random"`` (the official 1e-6 noise, drawn from a generator seeded with ``seed``). The two
            can keep different frames: on 4 S9/S11 sequences the poses moved by 0.9-2.5 mm per joint on
            average (up to 28 mm on single joints) with the interim model, P1 by at most 0.1 mm.
    """

    def __init__(self, model: str | nn.Module | None = None, checkpoint: str | Path | None = None,
                 device: str = "cpu", flip: bool = True, batch_size: int = 16, min_score: float | None = None,
                 tie_break: str = "index", seed: int = 0) -> None:
        if batch_size < 1:
            raise PrunePoseError(f"batch_size must be >= 1, got {batch_size}")
        if min_score is not None and not math.isfinite(min_score):
            raise PrunePoseError(f"min_score must be a finite number or None, got {min_score}")
        self.device = torch.device(device)
        self.model = load_lifter(model, checkpoint).to(self.device)
        self.config = self.model.config
        self.flip = bool(flip)
        self.batch_size = int(batch_size)
        self.min_score = min_score
        self.seed = int(seed)
        if tie_break not in TIE_BREAKS:
            raise PrunePoseError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
        self.tie_break = tie_break

    @property
    def num_frames(self) -> int:
        """F, the window length the model was built for."""
        return int(self.config.num_frames)

    def __repr__(self) -> str:
        return (f"Lifter3D(model={self.config.name!r}, frames={self.num_frames}, flip={self.flip}, "
                f"device={str(self.device)!r})")

    def __call__(self, keypoints2d: np.ndarray, image_size: Sequence[float], layout: str = "coco",
                 scores: np.ndarray | None = None) -> Results3D:
        """Lift ``keypoints2d`` (T, J, 2) pixels (any T >= 1) of frames ``image_size = (w, h)``.

        ``layout``: ``"coco"`` (COCO-17, converted: see `prunepose.api.layouts.coco_to_h36m` for the five
        synthesised joints), ``"h36m"`` or ``"mpii"``. Missing joints (NaN/inf, or score < ``min_score``)
        are interpolated over time and flagged in ``Results3D.filled``; a joint missing in every frame
        raises PrunePoseError.
        """
        from prunepose.geometry.camera import normalize_screen

        w, h = _check_image_size(image_size)
        kpts, scores = _check_keypoints(keypoints2d, scores)
        check_layout(layout, kpts.shape[1])
        kpts = _outside_as_missing(kpts, w, h, layout)
        gone = missing_mask(kpts, scores, self.min_score)
        kpts = np.where(gone[..., None], np.nan, kpts)
        h36m = to_h36m(kpts, layout)
        filled = ~np.isfinite(h36m).all(axis=-1)
        h36m = fill_missing(h36m, filled, lambda j: f"joint {H36M17.keypoint_names[j]!r} "
                                                    f"(from {source_names(layout, j)})")
        _check_extent(h36m)
        # in float32 as the training clips are (`H36MSequence.pose2d`), so equal pixels give equal inputs
        x = normalize_screen(h36m.astype(np.float32), w, h)
        if self.config.in_channels == 3:
            conf = np.ones(x.shape[:-1]) if scores is None else np.nan_to_num(scores_to_h36m(scores, layout))
            x = np.concatenate([x, np.where(filled, 0.0, conf)[..., None]], axis=-1)
        poses, kept = self._run(torch.from_numpy(x.astype(np.float32)))
        if not np.isfinite(poses).all():  # never hand NaN on to files; name where it came from
            frames = np.flatnonzero(~np.isfinite(poses).all(axis=(1, 2)))
            raise PrunePoseError(f"{self.config.name} gave NaN/infinite 3D poses on {len(frames)} frame(s), "
                                 f"first {frames[:5].tolist()}: are the weights intact?")
        return Results3D(poses3d=poses, keypoints2d=h36m.astype(np.float32), filled=filled, kept_frames=kept,
                         image_size=(w, h), model=self.config.name, layout=layout)

    @torch.no_grad()
    def _run(self, x: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Run every window of the normalised (T, 17, C) sequence; stitch the (T, 17, 3) poses and, for
        pruned models, the kept frames (last pruning stage) of every window as sequence frame indices."""
        from prunepose.export.onnx import frame_tie_break
        from prunepose.tasks.lifting import lift_clips

        windows = plan_windows(x.shape[0], self.num_frames, self.config.pipeline == "seq2frame")
        poses = np.zeros((x.shape[0], x.shape[1], 3), dtype=np.float32)
        kept: list[np.ndarray] = []
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        for i in range(0, len(windows), self.batch_size):
            batch = windows[i:i + self.batch_size]
            clips = torch.stack([x[torch.from_numpy(wd.frames)] for wd in batch]).to(self.device)
            with frame_tie_break(self.model, self.tie_break):
                out = lift_clips(self.model, clips, self.flip, generator=gen)
            pred = out.pose3d.cpu().numpy()
            frames = None if out.frames is None else out.frames.cpu().numpy()
            for b, wd in enumerate(batch):
                # output position of each wanted window frame (TPC outputs only the frames it kept)
                pos = wd.take if frames is None else np.array([int(np.flatnonzero(frames[b] == t)[0])
                                                               for t in wd.take])
                poses[wd.into] = pred[b, pos]
                if out.kept:
                    kept.append(wd.frames[out.kept[-1][b].cpu().numpy()])
        return poses, (kept if self.config.stages else None)
