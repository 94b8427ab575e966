"""Where prediction inputs come from: image files, folders of images, videos and in-memory arrays.

Why a module of its own: every bad input a user can hand us (missing path, unsupported extension, empty
or corrupt image, video that cannot be opened, has no frames, or breaks off midway) must surface as one
:class:`~prunepose.errors.DataError` naming the file, never as an OpenCV ``None`` that turns into a
confusing ``NoneType`` error several calls later, and never as a silently half-grey picture (OpenCV decodes
a truncated JPEG without complaint, so we check for the end marker ourselves).

Frames are produced lazily (:func:`iter_frames`) so a long video never has to fit in memory.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from prunepose.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
#: Smallest image side we accept. Below this a person cannot be resolved: the crop would be a blur of a few
#: pixels blown up to the model input (an image smaller than the model input itself is fine: it is upsampled).
MIN_IMAGE_SIDE = 16

#: What ``PoseEstimator2D`` accepts: a path (image, folder, video), an image array, or a list of these.
Source = Union[str, os.PathLike, np.ndarray, Sequence["Source"]]  # noqa: UP007  (recursive alias: needs Union)


@dataclass
class Frame:
    """One image to run the model on.

    ``image``: (H, W, 3) uint8 BGR. ``source``: the file path, or ``"array"`` for in-memory images.
    ``frame_index``: position in the video (``None`` for still images). ``image_id``: the COCO results id
    (see :func:`image_id_for`). ``name``: a short name used for output files (file stem, plus frame number).
    """

    image: np.ndarray
    source: str
    frame_index: int | None
    image_id: int | str
    name: str


class VideoReadError(DataError):
    """A video stopped yielding frames before its end (truncated or corrupt file).

    Raised *after* the frames that could be read were yielded, so callers can keep their partial results.
    """

    def __init__(self, message: str, frames_read: int) -> None:
        super().__init__(message)
        self.frames_read = frames_read


def image_id_for(path: Path) -> int | str:
    """COCO results ``image_id`` of an image file: ``int(stem)`` when the stem is all digits (COCO's own
    zero-padded file names, so pycocotools can match results to annotations), else the stem itself."""
    return int(path.stem) if path.stem.isdigit() else path.stem


def is_video(path: str | os.PathLike) -> bool:
    """True when ``path`` has a video extension (the reader is chosen from the extension, not the content)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def check_array(image: np.ndarray, where: str = "array") -> np.ndarray:
    """Validate an in-memory image and return it as (H, W, 3) uint8 BGR.

    Grey (H, W) / (H, W, 1) images are expanded to 3 channels and BGRA loses its alpha (what ``cv2.imread``
    does for files). Anything else (float images, CHW layout, empty arrays) is refused: guessing a scale or
    a layout would give silently wrong keypoints.
    """
    if not isinstance(image, np.ndarray):
        raise DataError(f"{where}: expected a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DataError(f"{where}: image dtype must be uint8 (0..255, BGR as cv2.imread gives), got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{where}: image must be (H, W, 3) BGR, got shape {image.shape}")
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise DataError(f"{where}: image is {image.shape[1]}x{image.shape[0]} px; at least {MIN_IMAGE_SIDE} px "
                        "per side are needed to see a person")
    return image


def _check_file(path: Path, kinds: tuple[str, ...]) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.suffix.lower() not in kinds:
        raise DataError(f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; images: "
                        f"{' '.join(IMAGE_EXTENSIONS)}; videos: {' '.join(VIDEO_EXTENSIONS)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")


def _jpeg_is_complete(path: Path) -> bool:
    """True when the JPEG's last 4 KiB hold the end-of-image marker FFD9.

    Why: OpenCV decodes a truncated JPEG without an error and fills the missing rows with grey. Inside the
    entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so FFD9 in the tail means
    the file reached its end (trailing bytes after it, which some cameras write, are allowed).
    """
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        return b"\xff\xd9" in f.read()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 BGR, or raise a DataError naming the file and the problem."""
    path = Path(path)
    _check_file(path, IMAGE_EXTENSIONS)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot decode image (corrupt file or not really {path.suffix})")
    if path.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_is_complete(path):
        raise DataError(f"{path}: JPEG is truncated (no end-of-image marker); the decoded picture would be "
                        "partly grey")
    return check_array(image, str(path))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (sub-folders and other files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{folder}: folder holds no images ({' '.join(IMAGE_EXTENSIONS)})")
    return files


def video_info(path: str | os.PathLike) -> dict[str, float]:
    """``{"frames", "fps", "width", "height"}`` of a video as its container reports them (frames may be 0
    when the container does not say). Raises a DataError when OpenCV cannot open the file."""
    path = Path(path)
    _check_file(path, VIDEO_EXTENSIONS)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: cannot open video (corrupt, truncated, or a codec OpenCV lacks)")
        return {"frames": max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))), "fps": float(cap.get(cv2.CAP_PROP_FPS)),
                "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}
    finally:
        cap.release()


def iter_video(path: str | os.PathLike, retries: int = 3) -> Iterator[Frame]:
    """Yield the frames of a video one by one.

    * cannot be opened -> DataError before any frame; opens but yields no frame -> DataError ("no frames");
    * a read fails before the frame count the container announced -> up to ``retries`` further reads are
      tried (a single undecodable frame is skipped with a warning); if none succeeds and more than
      ``max(2, 1 %)`` of the announced frames are missing, :class:`VideoReadError` is raised *after* the
      good frames were yielded (truncated file). The tolerance absorbs containers whose count is an estimate.
    """
    path = Path(path)
    info = video_info(path)
    expected = int(info["frames"])
    cap = cv2.VideoCapture(str(path))
    stem = path.stem
    index = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok and expected and index < expected:
                for _ in range(retries):
                    ok, image = cap.read()
                    if ok:
                        warnings.warn(f"{path}: skipped an undecodable frame before frame {index}", stacklevel=2)
                        break
            if not ok:
                break
            yield Frame(check_array(image, f"{path} frame {index}"), str(path), index, index, f"{stem}_{index:06d}")
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise DataError(f"{path}: video has no readable frames")
    if expected and expected - index > max(2, expected // 100):
        raise VideoReadError(f"{path}: video broke off after {index} of {expected} frames (truncated or corrupt "
                             "file)", frames_read=index)


def _expand(source: Source) -> list[tuple[str, Path | np.ndarray]]:
    """Flatten a source into ("image" | "video" | "array", item) entries, checking paths up front."""
    if isinstance(source, np.ndarray):
        return [("array", source)]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return [("image", p) for p in list_images(path)]
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        if is_video(path):
            _check_file(path, VIDEO_EXTENSIONS)
            return [("video", path)]
        _check_file(path, IMAGE_EXTENSIONS)
        return [("image", path)]
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise DataError("source: empty list")
        out: list[tuple[str, Path | np.ndarray]] = []
        for item in source:
            out += _expand(item)
        return out
    raise DataError(f"source: expected a path, a folder, a video, an (H, W, 3) uint8 array or a list of these, "
                    f"got {type(source).__name__}")


def iter_frames(source: Source) -> Iterator[Frame]:
    """Every image/frame of ``source`` in order (paths are checked before the first frame is read).

    Arrays get ``image_id`` = their position among the arrays of ``source`` and ``source == "array"``.
    """
    entries = _expand(source)
    n_array = 0
    for kind, item in entries:
        if kind == "video":
            yield from iter_video(item)  # type: ignore[arg-type]
        elif kind == "image":
            path = Path(item)  # type: ignore[arg-type]
            yield Frame(read_image(path), str(path), None, image_id_for(path), path.stem)
        else:
            yield Frame(check_array(item, f"array #{n_array}"), "array", None, n_array,  # type: ignore[arg-type]
                        f"array_{n_array:04d}")
            n_array += 1


def source_kind(source: Source) -> str:
    """``"video"`` when ``source`` is exactly one video file, else ``"images"`` (after checking paths)."""
    entries = _expand(source)
    return "video" if len(entries) == 1 and entries[0][0] == "video" else "images"
