"""What a 2D-to-3D lifter returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LiftingOutput:
    """Output of a video pose lifter.

    pose3d: (B, F_out, J, 3) 3D joints in the **camera frame**, root-relative, in the units of the training
        targets (metres for this project's Human3.6M targets; joint 0 is trained towards 0 and is set to 0
        by the metrics). F_out = F for seq2seq models (and HoT after recovery); for seq2frame TPC models
        (no recovery) F_out = the number of kept frames, in temporal order.
    kept: one (B, f_s) int64 tensor per pruning stage with the *absolute* input-frame indices (0..F-1,
        sorted ascending) of the frames whose tokens go on after that stage; empty when nothing is pruned.
        Pass it back as ``model(x, kept=out.kept)`` to reuse a selection (e.g. for the flipped test pass).
    frames: (B, F_out) int64 absolute input-frame index of each output pose.
    """

    pose3d: torch.Tensor
    kept: list[torch.Tensor] = field(default_factory=list)
    frames: torch.Tensor | None = None

    def at_frame(self, frame: int) -> torch.Tensor:
        """(B, J, 3) pose of input frame ``frame`` (e.g. the centre ``(F - 1) // 2`` in seq2frame)."""
        frames = self.frames if self.frames is not None else torch.arange(self.pose3d.shape[1])
        frames = frames.to(self.pose3d.device).expand(self.pose3d.shape[0], -1)
        hit = frames == frame
        if not bool(hit.any(dim=1).all()):
            raise ValueError(f"frame {frame} is not among the output frames of every sample")
        pos = hit.int().argmax(dim=1)
        return self.pose3d[torch.arange(self.pose3d.shape[0], device=pos.device), pos]
