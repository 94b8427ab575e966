"""What :class:`prunepose.api.lifter3d.Lifter3D` returns: 3D poses plus what was done to the input.

Why the extra fields next to the poses: a user must be able to tell which 2D joints were measured and
which were interpolated (``filled``), and which frames a pruned model actually looked at (``kept_frames``).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.atomic import atomic_write
from prunepose.errors import PrunePoseError
from prunepose.skeletons import H36M17


@dataclass
class Results3D:
    """3D poses of one person over T frames.

    Attributes:
        poses3d: (T, 17, 3) float32, **metres**, **camera frame** (x right, y down, z forward),
            **root-relative** (pelvis = 0), H36M-17 joint order (`prunepose.skeletons.H36M17`).
        keypoints2d: (T, 17, 2) float32 pixels: the H36M-layout 2D that was lifted (after the layout
            conversion and the filling of missing joints).
        filled: (T, 17) bool: True where that 2D joint was missing (NaN/inf, or score below ``min_score``)
            and was interpolated over time.
        kept_frames: for pruned (HoT/TPC) models, one int64 array per model window with the input frame
            indices whose tokens the model kept (edge-padding copies of a short sequence map to its first or
            last frame, so a frame can appear twice); ``None`` for unpruned models.
        image_size: (w, h) of the frames the 2D keypoints are in.
        model: registry name of the lifter.
        layout: layout of the 2D input before conversion (``coco``, ``h36m``, ``mpii``).
    """

    poses3d: np.ndarray
    keypoints2d: np.ndarray
    filled: np.ndarray
    kept_frames: list[np.ndarray] | None = None
    image_size: tuple[float, float] = (0.0, 0.0)
    model: str = ""
    layout: str = "h36m"
    joint_names: tuple[str, ...] = field(default=H36M17.keypoint_names)

    def __len__(self) -> int:
        return int(self.poses3d.shape[0])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: units and frame spelled out, arrays as nested lists (metres / pixels)."""
        return {
            "units": "m",
            "frame": "camera (x right, y down, z forward), root-relative (pelvis = 0)",
            "skeleton": "h36m17",
            "joint_names": list(self.joint_names),
            "model": self.model,
            "input_layout": self.layout,
            "image_size": [float(v) for v in self.image_size],
            "num_frames": len(self),
            "poses3d": np.round(self.poses3d.astype(np.float64), 6).tolist(),
            "keypoints2d": np.round(self.keypoints2d.astype(np.float64), 3).tolist(),
            "filled": self.filled.astype(bool).tolist(),
            "kept_frames": None if self.kept_frames is None else [k.tolist() for k in self.kept_frames],
        }

    def save(self, path: str | Path) -> Path:
        """``.json``: `to_json`; ``.npy``: the (T, 17, 3) poses only. Written atomically."""
        import json

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = json.dumps(self.to_json()) + "\n"
            return atomic_write(path, lambda f: f.write(text.encode()))
        if suffix == ".npy":
            buf = io.BytesIO()
            np.save(buf, self.poses3d.astype(np.float32))
            return atomic_write(path, lambda f: f.write(buf.getvalue()))
        raise PrunePoseError(f"{path}: Results3D.save writes .json or .npy, not {suffix or '(no suffix)'!r}")

    def plot(self, frame: int = 0, title: str | None = None):  # noqa: ANN201  (matplotlib Figure)
        """Figure of the 3D pose at ``frame`` (`prunepose.viz.draw3d.plot_pose3d`; needs matplotlib)."""
        if not -len(self) <= frame < len(self):
            raise PrunePoseError(f"frame {frame} is out of range for {len(self)} frames")
        from prunepose.viz.draw3d import plot_pose3d

        return plot_pose3d(self.poses3d[frame], "h36m17", title=title)

    def animate(self, path: str | Path, fps: float = 25.0) -> Path:
        """Write the sequence as an .mp4 or .gif (`prunepose.viz.draw3d.animate_poses3d`)."""
        from prunepose.viz.draw3d import animate_poses3d

        return animate_poses3d(self.poses3d, path, fps=fps, skeleton="h36m17")


__all__ = ["Results3D"]
