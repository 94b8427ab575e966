"""``PoseEstimator2D``: one call from images, folders, videos or arrays to 2D keypoints in image pixels.

Top-down, as the models were trained: every person box becomes a crop through the same affine the datasets
use (``prunepose.data.transforms``), crops from several images are batched, the network runs in PyTorch or
onnxruntime, its heatmaps (UDP + DARK) or SimCC logits are decoded by ``prunepose.codecs`` and mapped back to
the image with the inverse crop affine. Nothing here re-implements geometry or decoding, so predictions are
exactly what ``prunepose test`` evaluates.

Example::

    from prunepose import PoseEstimator2D
    est = PoseEstimator2D()                                  # bundled default weights
    results = est("group.jpg")                               # list[Results2D], one per image
    results[0].keypoints, results[0].scores                  # (P, K, 2) px, (P, K): every person found
    results[0].boxes, results[0].box_scores                  # (P, 4) xyxy detector boxes, (P,)
    for r in est.stream("street.mp4"): r.track_ids           # lazy, frame by frame, stable person ids

Person boxes come from the bundled person detector (:mod:`prunepose.detect`, YOLOX-Nano on onnxruntime)
unless ``boxes`` / ``det_file`` are given; on images duplicate poses of one person are removed by OKS-NMS.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.api.backends import (
    OnnxBackend,
    PoseBackend,
    TorchBackend,
    default_checkpoint,
    load_torch_model,
    resolve_device,
)
from prunepose.api.boxes import DetectionFile, KeypointBoxTracker, PersonBoxes, explicit_boxes, whole_image_box
from prunepose.api.results import DEFAULT_KPT_THR, Results2D
from prunepose.api.sources import Frame, Source, check_array, iter_frames, source_kind
from prunepose.codecs.heatmap import HeatmapCodec, flip_heatmaps, input_to_image
from prunepose.codecs.simcc import flip_test_logits
from prunepose.data.transforms import box_to_center_scale, get_affine_transform, normalize_image, warp_image
from prunepose.detect.person import DEFAULT_DET_SIZE
from prunepose.detect.posenms import suppress_duplicate_poses
from prunepose.errors import ConfigError, PrunePoseError
from prunepose.skeletons import get_skeleton

#: ``Results2D.box_origin`` of boxes from the person detector on still images (OKS-NMS applies to those).
DETECTOR_ORIGIN = "person detector"

#: Default detector score threshold of the pose pipeline (``docs/results-2d.md``: recall and keypoint AP
#: against the threshold on real COCO images).
DEFAULT_DET_THR = 0.3


class PoseEstimator2D:
    """2D pose estimation with a prunepose model (PyTorch weights or an exported ``.onnx`` file).

    Args:
        model: registry name (``ppt_s``, ``gtpt_t``, ...). Optional when the weights carry their JSON.
        checkpoint: ``.safetensors`` / ``.pt`` weights, or ``.onnx`` to run with onnxruntime. With neither
            ``model`` nor ``checkpoint`` the bundled default weights are used.
        device: ``cpu`` (default), ``cuda``, ``cuda:N``, ``mps`` or ``auto``. ONNX runs on CPU.
        batch_size: crops per network call (crops of several images are batched together).
        flip: flip test (average with the mirrored crop's output); about 2x the cost, usually a bit more accurate.
        kpt_thr: keypoint score under which the tracker and the pictures ignore a keypoint; default: the
            ``kpt_thr`` calibrated for these weights when their JSON has one
            (``scripts/distill/calibrate_kpt_thr.py``), else :func:`default_kpt_thr` of the model (0.3 for
            heatmap models, about 0.03 for SimCC/GTPT).
        detector: where person boxes come from when no ``boxes``/``det_file`` are given: ``"auto"`` (default)
            the bundled person detector (the whole image, as before, when onnxruntime or its weights are
            missing), a path to a YOLOX ``.onnx``, a :class:`~prunepose.detect.PersonDetector` (or any callable
            ``image -> (xyxy, scores)``), or ``None`` for the whole image (one pose per image).
        det_thr: detector score threshold. max_people: keep the ``max_people`` highest-scoring boxes per image.
        det_every: on videos, run the detector on every ``det_every``-th frame and follow people by their
            keypoints in between (:class:`~prunepose.detect.tracking.DetectionTracker`).
        det_size: detector input long side in px (640 default: recall 0.88 of COCO persons at IoU 0.5 in
            ~22 ms on 2 cores; 416 is about twice as fast and finds fewer small people, docs/results-2d.md).
    """

    def __init__(self, model: str | None = None, checkpoint: str | Path | None = None, device: str = "cpu",
                 batch_size: int = 16, flip: bool = False, kpt_thr: float | None = None, detector: Any = "auto",
                 det_thr: float = DEFAULT_DET_THR, max_people: int | None = None, det_every: int = 5,
                 det_size: int = DEFAULT_DET_SIZE) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if int(det_every) < 1:
            raise ConfigError(f"det_every must be >= 1, got {det_every}")
        self.det_every = int(det_every)
        self.detector = make_detector(detector, det_thr, max_people, det_size)
        self.batch_size = int(batch_size)
        self.flip = bool(flip)
        self.backend: PoseBackend
        if checkpoint is None and model is None:  # bundled model: its ONNX export on CPU when possible
            checkpoint = default_checkpoint(device)
        if checkpoint is not None and str(checkpoint).lower().endswith(".onnx"):
            if device not in ("cpu", "auto", None):
                raise ConfigError(f"device {device!r}: the ONNX backend runs on CPU here; use device='cpu'")
            self.backend = OnnxBackend(checkpoint, model)
        else:
            dev = resolve_device(device)
            self.backend = TorchBackend(load_torch_model(model, checkpoint), dev)
        cfg = self.config
        from prunepose.tasks.topdown import make_codec

        self.codec = make_codec(cfg)
        self.skeleton = get_skeleton(cfg.skeleton)
        self.input_size = (int(cfg.input_size[0]), int(cfg.input_size[1]))
        self.token_grid = self.backend.grid()
        if kpt_thr is None:
            kpt_thr = calibrated_kpt_thr(checkpoint, model)
        self.kpt_thr = default_kpt_thr(cfg) if kpt_thr is None else float(kpt_thr)

    @property
    def config(self) -> Any:
        """The registry config of the network (input size, skeleton, family, pruning)."""
        return self.backend.config

    def __repr__(self) -> str:
        return (f"PoseEstimator2D({self.config.name}, backend={self.backend.name}, device={self.backend.device}, "
                f"batch_size={self.batch_size}, flip={self.flip})")

    # ------------------------------------------------------------------ public calls
    def __call__(self, source: Source, boxes: Any = None, det_file: str | Path | None = None, track: bool = True,
                 det_score_thr: float = 0.0, keep_images: bool = True) -> list[Results2D]:
        """Predict every image / frame of ``source`` (see :meth:`stream`) and return the list of results.

        Every result holds its image for :meth:`Results2D.plot`; on long videos use :meth:`stream` or
        ``keep_images=False`` (a minute of 1080p video is about 10 GB of frames).
        """
        return list(self.stream(source, boxes=boxes, det_file=det_file, track=track, det_score_thr=det_score_thr,
                                keep_images=keep_images))

    def predict_image(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray | None = None) -> Results2D:
        """One (H, W, 3) uint8 BGR image; ``boxes_xyxy`` (P, 4) image px, default the detector's (see ``detector``)."""
        image = check_array(image_bgr)
        h, w = image.shape[:2]
        boxes = self._default_boxes(image) if boxes_xyxy is None else explicit_boxes(boxes_xyxy, w, h)
        return self._post(self._infer([(Frame(image, "array", None, 0, "array_0000"), boxes)])[0])

    def stream(self, source: Source, boxes: Any = None, det_file: str | Path | None = None, track: bool = True,
               det_score_thr: float = 0.0, keep_images: bool = True) -> Iterator[Results2D]:
        """Yield one :class:`Results2D` per image / video frame, lazily.

        ``source``: image path, folder of images, video path, (H, W, 3) uint8 BGR array, or a list of these.
        Person boxes (see :mod:`prunepose.api.boxes`): ``boxes`` (P, 4) ``xyxy`` for every image, or
        ``det_file`` (COCO detection JSON, records below ``det_score_thr`` dropped), else the person detector
        (``detector``; the whole image when it is ``None``). No person detected is an empty result, not an
        error. On a single video with ``track=True`` people are tracked with stable ``track_ids``: detector
        boxes every ``det_every`` frames, each person's previous keypoints in between (``boxes`` instead seed
        the keypoint tracker on the first frame). ``keep_images=False`` drops the pixels from the results.

        Path problems are raised before the first result. A bad image in a list/folder, or a video that breaks off
        midway (:class:`~prunepose.api.sources.VideoReadError`), raises after the results of everything read
        before it were yielded.
        """
        if boxes is not None and det_file is not None:
            raise ConfigError("give either boxes or det_file, not both")
        dets = DetectionFile.load(det_file, det_score_thr) if det_file is not None else None
        tracking = bool(track) and dets is None and source_kind(source) == "video"
        frames = iter_frames(source)
        if tracking:
            yield from self._stream_tracked(frames, boxes, keep_images)
            return
        pending: list[tuple[Frame, PersonBoxes]] = []
        n_crops = 0
        try:
            for frame in frames:
                h, w = frame.image.shape[:2]
                if dets is not None:
                    still = frame.frame_index is None and frame.source != "array"
                    person_boxes = dets.lookup(frame.image_id, frame.source if still else None)
                elif boxes is not None:
                    person_boxes = explicit_boxes(boxes, w, h, "boxes")
                else:
                    person_boxes = self._default_boxes(frame.image)
                pending.append((frame, person_boxes))
                n_crops += len(person_boxes)
                if n_crops >= self.batch_size:
                    yield from self._finish(pending, keep_images)
                    pending, n_crops = [], 0
        except PrunePoseError:  # a bad image/frame midway: first hand out what was read before it
            yield from self._finish(pending, keep_images)
            raise
        yield from self._finish(pending, keep_images)

    # ------------------------------------------------------------------ internals
    def _finish(self, pending: list[tuple[Frame, PersonBoxes]], keep_images: bool) -> Iterator[Results2D]:
        if not pending:
            return
        for res in self._infer(pending):
            res = self._post(res)
            if not keep_images:
                res.image = None
            yield res

    def _stream_tracked(self, frames: Iterator[Frame], seed: Any, keep_images: bool) -> Iterator[Results2D]:
        """Frame by frame: the boxes of frame t come from the poses of frame t-1 (cannot batch across frames).

        With a detector and no seed boxes: :class:`DetectionTracker` (detections every ``det_every`` frames);
        otherwise the keypoint-only :class:`KeypointBoxTracker` (seeded by ``boxes``, else the whole frame).
        """
        from prunepose.detect.tracking import DetectionTracker

        tracker: KeypointBoxTracker | DetectionTracker
        if self.detector is not None and seed is None:
            tracker = DetectionTracker(self.detector, det_every=self.det_every, score_thr=self.kpt_thr,
                                       max_people=getattr(self.detector, "max_people", None),
                                       sigmas=tuple(self.skeleton.sigmas))
        else:
            tracker = KeypointBoxTracker(score_thr=self.kpt_thr)
        first = True
        for n, frame in enumerate(frames):
            h, w = frame.image.shape[:2]
            if first and seed is not None:
                tracker.seed(explicit_boxes(seed, w, h, "boxes").xyxy)  # type: ignore[union-attr]
            first = False
            person_boxes = tracker.boxes(n, frame.image) if isinstance(tracker, DetectionTracker) else \
                tracker.boxes(w, h)
            res = self._infer([(frame, person_boxes)])[0]
            res.track_ids = tracker.update(res.keypoints, res.scores)
            if not keep_images:
                res.image = None
            yield res

    def _default_boxes(self, image: np.ndarray) -> PersonBoxes:
        """The detector's boxes for an image (possibly none), or the whole image without a detector."""
        h, w = image.shape[:2]
        if self.detector is None:
            return whole_image_box(w, h)
        xyxy, scores = self.detector(image)
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        return PersonBoxes(xyxy, np.asarray(scores, dtype=np.float64).reshape(-1), np.full(len(xyxy), 1.25),
                           DETECTOR_ORIGIN)

    def _post(self, res: Results2D) -> Results2D:
        """OKS-NMS on detector boxes: two boxes on one person give one pose (the higher-scoring one)."""
        if res.box_origin == DETECTOR_ORIGIN and len(res) > 1:
            return suppress_duplicate_poses(res, self.skeleton.sigmas)
        return res

    def _crop(self, image: np.ndarray, box_xyxy: np.ndarray, padding: float) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray, np.ndarray]:
        """Model input (3, H, W) float32 of one box, with its image->input affine, centre and scale."""
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        center, scale = box_to_center_scale((x1, y1, x2 - x1, y2 - y1), self.input_size[0] / self.input_size[1],
                                            padding=float(padding))
        mat = get_affine_transform(center, scale, 0.0, self.input_size, udp=self.codec.use_udp)
        return normalize_image(warp_image(image, mat, self.input_size)), mat, center, scale

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Network + flip test + decoding for a batch of crops: input-px coords (B, K, 2), scores, kept stages."""
        out = self.backend(batch)
        flipped = self.backend(np.ascontiguousarray(batch[..., ::-1])) if self.flip else None
        pairs = self.skeleton.flip_pairs
        if "heatmaps" in out:
            heatmaps = out["heatmaps"]
            if flipped is not None:
                heatmaps = (heatmaps + flip_heatmaps(flipped["heatmaps"], pairs,
                                                     shift=bool(getattr(self.config, "flip_shift", False)))) * 0.5
            assert isinstance(self.codec, HeatmapCodec)
            coords, scores = self.codec.decode(heatmaps, refine="dark")
        else:
            sx, sy = out["simcc_x"], out["simcc_y"]
            if flipped is not None:
                sx, sy = flip_test_logits(sx, sy, flipped["simcc_x"], flipped["simcc_y"], pairs, shift=True)
            coords, scores = self.codec.decode(sx, sy)
        stages = sorted((k for k in out if k.startswith("kept_")), key=lambda k: int(k.split("_")[1]))
        return coords, scores, [np.asarray(out[k]) for k in stages]

    def _infer(self, items: list[tuple[Frame, PersonBoxes]]) -> list[Results2D]:
        """Crops of all boxes of ``items``, run in chunks of ``batch_size``, split back per frame."""
        crops, mats, centers, scales = [], [], [], []
        for frame, boxes in items:
            for b in range(len(boxes)):
                x, mat, c, s = self._crop(frame.image, boxes.xyxy[b], boxes.padding[b])
                crops.append(x)
                mats.append(mat)
                centers.append(c)
                scales.append(s)
        k = self.skeleton.num_keypoints
        coords = np.zeros((len(crops), k, 2), np.float32)
        scores = np.zeros((len(crops), k), np.float32)
        kept: list[list[np.ndarray]] = [[] for _ in crops]
        for start in range(0, len(crops), self.batch_size):
            stop = min(start + self.batch_size, len(crops))
            c, s, stages = self._run(np.stack(crops[start:stop]))
            coords[start:stop], scores[start:stop] = c, s
            for i in range(stop - start):
                kept[start + i] = [_person_kept(st[i]) for st in stages]
        if crops:
            image_xy = input_to_image(coords, np.stack(centers), np.stack(scales), self.input_size,
                                      udp=self.codec.use_udp).astype(np.float32)
        else:
            image_xy = coords
        results, pos = [], 0
        for frame, boxes in items:
            n = len(boxes)
            sl = slice(pos, pos + n)
            results.append(Results2D(
                keypoints=image_xy[sl], scores=scores[sl], boxes=boxes.xyxy.astype(np.float32).reshape(n, 4),
                box_scores=boxes.scores.astype(np.float32), kept_tokens=kept[sl], token_grid=self.token_grid,
                crop_affines=np.stack(mats[sl]) if n else np.zeros((0, 2, 3)), input_size=self.input_size,
                skeleton=self.skeleton.name, image=frame.image, image_size=(frame.image.shape[1], frame.image.shape[0]),
                source=frame.source, frame_index=frame.frame_index,
                image_id=frame.image_id, box_origin=boxes.origin, kpt_thr=self.kpt_thr, extra={"name": frame.name},
                track_ids=None if boxes.track_ids is None else boxes.track_ids.copy()))
            pos += n
        return results


def make_detector(detector: Any, det_thr: float, max_people: int | None, det_size: int) -> Any:
    """The ``detector`` argument of :class:`PoseEstimator2D` -> a callable ``image -> (xyxy, scores)`` or ``None``.

    ``"auto"`` falls back to ``None`` (whole image) when onnxruntime or the bundled weights are missing, so a
    minimal install still predicts one pose per image; an explicit path or object must work or fail loudly.
    """
    from prunepose.detect.person import PersonDetector, detector_available

    if detector is None:
        return None
    if isinstance(detector, str) and detector == "auto":
        if not detector_available():
            return None
        return PersonDetector(score_thr=det_thr, max_people=max_people, input_size=det_size)
    if isinstance(detector, (str, Path)):
        return PersonDetector(detector, score_thr=det_thr, max_people=max_people, input_size=det_size)
    if callable(detector):
        return detector
    raise ConfigError(f"detector must be 'auto', None, a path to an .onnx file or a callable, got {detector!r}")


def calibrated_kpt_thr(checkpoint: str | Path | None, model: str | None) -> float | None:
    """The ``kpt_thr`` stored in the JSON beside the weights (bundled default when neither is given), if any.

    Why: score scales differ between trained models (an undertrained one never reaches the generic
    defaults), so weights may carry a threshold measured on held-out persons.
    """
    from prunepose.api.backends import DEFAULT_WEIGHTS
    from prunepose.weights import read_weights_info

    path = Path(checkpoint) if checkpoint is not None else DEFAULT_WEIGHTS if model is None else None
    json_path = None if path is None else path.with_suffix(".json")
    if json_path is None or not json_path.is_file():
        return None
    value = read_weights_info(path).get("kpt_thr")  # the backend has already loaded (and checked) this JSON
    if value is None:
        return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    raise ConfigError(f"{json_path}: field 'kpt_thr' must be a finite number >= 0, got {value!r}")


def default_kpt_thr(config: Any) -> float:
    """Keypoint score threshold matching a model's score scale.

    Heatmap models score a keypoint by its heatmap maximum, which peaks near 1 (the Gaussian target's peak):
    0.3, as MMPose. SimCC (GTPT) scores are softmax probabilities over ``k*W`` bins trained towards a Gaussian
    pdf of ``sigma`` bins, so even a perfect prediction peaks at ``1 / (sigma sqrt(2 pi))`` (0.0997 for
    sigma 4): the same 0.3 of that peak, ~0.03, keeps the threshold's meaning.
    """
    from prunepose.tasks.topdown import SIMCC_SIGMA, uses_simcc

    if uses_simcc(config):
        return DEFAULT_KPT_THR / (SIMCC_SIGMA * math.sqrt(2.0 * math.pi))
    return DEFAULT_KPT_THR


def _person_kept(stage: np.ndarray) -> np.ndarray:
    """One person's kept grid indices at one stage, sorted (the order top-k returns them in differs between
    PyTorch and onnxruntime and means nothing on the grid); for GTPT's per-group (G, K_s) stages the union over
    the groups without the -1 slots of dense keypoint tokens."""
    idx = np.asarray(stage, dtype=np.int64).reshape(-1)
    return np.unique(idx[idx >= 0])


def default_weights_available() -> bool:
    """Whether the bundled default 2D weights are installed (they are produced by the distillation step)."""
    from prunepose.api.backends import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS.is_file()


__all__ = ["PoseEstimator2D", "Results2D", "default_weights_available"]
