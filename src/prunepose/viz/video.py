"""Write BGR frames to an .mp4 file one at a time (OpenCV 'mp4v'), so long videos never sit in memory.

Why 'mp4v' (MPEG-4 part 2): it is the codec every opencv-python(-headless) wheel can encode without system
libraries; H.264 would need an external ffmpeg. Frames of another size than the first are resized to it,
because OpenCV silently drops frames whose size differs from the writer's, and odd sizes get one black
row/column of padding, because MPEG-4 needs even sizes (OpenCV would otherwise crop silently).
"""
from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from prunepose.errors import DataError, PrunePoseError

__all__ = ["Mp4Writer", "count_video_frames"]


class Mp4Writer:
    """``with Mp4Writer(path, fps) as w: w.write(frame_bgr)``; the size is taken from the first frame."""

    def __init__(self, path: str | Path, fps: float) -> None:
        if not fps > 0:
            raise DataError(f"{path}: fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.count = 0
        self._size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise DataError(f"{self.path}: frames must be (H, W, 3) uint8 BGR, got {frame.shape} {frame.dtype}")
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = cv2.copyMakeBorder(frame, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            h, w = frame.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise PrunePoseError(f"{self.path}: OpenCV cannot open an mp4v video writer here")
            self._size = (w, h)
        elif (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(frame))
        self.count += 1

    def close(self) -> None:
        """Finish the file (idempotent)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def count_video_frames(path: str | Path) -> int:
    """Number of frames OpenCV actually decodes from ``path`` (reads them all; the header may lie)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video")
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n
