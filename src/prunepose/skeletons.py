"""Keypoint sets as data: names, flip pairs, OKS sigmas, limbs and loss weights.

Why a module of its own: datasets, codecs (flip test), losses (joint weights), metrics (OKS sigmas) and
drawing all need the same facts about a keypoint set, and they must agree. Keeping them as frozen data
here means one source of truth and no keypoint bookkeeping scattered through the code.

Conventions
-----------
* Indices are 0-based and follow each dataset's native annotation order.
* ``flip_pairs`` are written ``(left, right)`` for every joint that has a side (body, feet, hands), so
  ``left_ids``/``right_ids`` are meaningful; the 68 face points (iBUG layout, no side names) are written
  ``(lower index, higher index)``.
* ``sigmas`` are the per-keypoint OKS constants in the COCO convention (nose 0.026, i.e. pycocotools'
  ``kpt_oks_sigmas``; the OKS uses ``k = 2 * sigma``). An empty tuple means no OKS is defined for the set
  (Human3.6M is evaluated by MPJPE, not OKS).
* ``joint_weights`` multiply the per-joint heatmap/regression loss.
"""
from __future__ import annotations

import itertools
import types
from collections.abc import Mapping
from dataclasses import dataclass, field

from prunepose.errors import ConfigError

__all__ = [
    "COCO17",
    "COCO_WHOLEBODY133",
    "H36M17",
    "MPII16",
    "SKELETONS",
    "SKELETON_ALIASES",
    "Skeleton",
    "UnknownSkeletonError",
    "get_skeleton",
]


class UnknownSkeletonError(ConfigError, KeyError):
    """An unknown skeleton name was asked for.

    Why both bases: callers treat it as a configuration mistake (``ConfigError``), while code that looks
    skeletons up like a mapping can keep catching ``KeyError``.
    """

    def __str__(self) -> str:  # KeyError would print the message with quotes around it.
        return str(self.args[0]) if self.args else ""


def _frozen_mapping(data: Mapping[str, range] | None) -> Mapping[str, range]:
    return types.MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class Skeleton:
    """A keypoint set.

    Attributes:
        name: registry name (``get_skeleton(name)`` returns this object).
        keypoint_names: ``K`` names in native dataset order.
        flip_pairs: index pairs swapped by a horizontal flip (see module docstring for the order).
        sigmas: ``K`` OKS sigmas (COCO convention) or ``()`` when the set has no OKS.
        limbs: index pairs joined by a line when drawing.
        joint_weights: ``K`` per-joint loss weights.
        upper_body_ids: joints used by half-body augmentation as the upper half.
        lower_body_ids: joints used by half-body augmentation as the lower half.
        groups: optional partition of joints into groups (GTPT-style group tokens), e.g. head/upper/lower.
        parts: optional mapping part name -> ``range`` of indices (COCO-WholeBody body/foot/face/hands).
    """

    name: str
    keypoint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    limbs: tuple[tuple[int, int], ...]
    joint_weights: tuple[float, ...]
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...] | None = None
    parts: Mapping[str, range] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", _frozen_mapping(self.parts))
        k = len(self.keypoint_names)
        where = f"skeleton {self.name!r}"
        if len(set(self.keypoint_names)) != k:
            raise ConfigError(f"{where}: keypoint_names contains duplicates")
        if len(self.sigmas) not in (0, k):
            raise ConfigError(f"{where}: sigmas has {len(self.sigmas)} values for {k} keypoints")
        if len(self.joint_weights) != k:
            raise ConfigError(
                f"{where}: joint_weights has {len(self.joint_weights)} values for {k} keypoints"
            )
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            if not (0 <= a < k and 0 <= b < k) or a == b or a in seen or b in seen:
                raise ConfigError(f"{where}: flip pair ({a}, {b}) is out of range, self-paired or repeated")
            seen.update((a, b))
        for limb in self.limbs:
            if not all(0 <= i < k for i in limb):
                raise ConfigError(f"{where}: limbs entry {limb} is out of range")
        for field_name in ("upper_body_ids", "lower_body_ids"):
            if not all(0 <= i < k for i in getattr(self, field_name)):
                raise ConfigError(f"{where}: {field_name} has an index out of range")
        if self.groups is not None:
            flat = [i for g in self.groups for i in g]
            if sorted(flat) != list(range(k)):
                raise ConfigError(f"{where}: groups must partition the {k} keypoints")
        for part, idx in self.parts.items():
            if idx.start < 0 or idx.stop > k:
                raise ConfigError(f"{where}: part {part!r} range {idx} is out of range")

    @property
    def num_keypoints(self) -> int:
        """Number of keypoints ``K``."""
        return len(self.keypoint_names)

    @property
    def flip_index(self) -> list[int]:
        """Permutation ``p`` with ``flipped[..., i, :] = kpts[..., p[i], :]`` after mirroring x.

        It is an involution (``p[p[i]] == i``); unpaired joints map to themselves.
        """
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    @property
    def left_ids(self) -> tuple[int, ...]:
        """First element of every flip pair (the subject's left side for body, feet and hands)."""
        return tuple(a for a, _ in self.flip_pairs)

    @property
    def right_ids(self) -> tuple[int, ...]:
        """Second element of every flip pair (the subject's right side for body, feet and hands)."""
        return tuple(b for _, b in self.flip_pairs)

    def index(self, keypoint_name: str) -> int:
        """Index of a keypoint by name; raises ``ConfigError`` naming the skeleton when unknown."""
        try:
            return self.keypoint_names.index(keypoint_name)
        except ValueError:
            raise ConfigError(f"skeleton {self.name!r} has no keypoint {keypoint_name!r}") from None


# --------------------------------------------------------------------------------------------- COCO-17
_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
_COCO_FLIP = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# pycocotools COCOeval.Params keypoint sigmas (= [.26, .25, ...] / 10).
_COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
# The COCO category "skeleton" (1-based in the annotation file), converted to 0-based.
_COCO_LIMBS = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
# HRNet's COCODataset.joints_weight: elbows/knees 1.2, wrists/ankles 1.5.
_COCO_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5)

COCO17 = Skeleton(
    name="coco",
    keypoint_names=_COCO_NAMES,
    flip_pairs=_COCO_FLIP,
    sigmas=_COCO_SIGMAS,
    limbs=_COCO_LIMBS,
    joint_weights=_COCO_WEIGHTS,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
    # GTPT keypoint groups: head (nose, eyes, ears), upper limbs, lower limbs.
    groups=(tuple(range(5)), tuple(range(5, 11)), tuple(range(11, 17))),
)

# ------------------------------------------------------------------------------------ COCO-WholeBody
_FOOT_NAMES = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
_FACE_NAMES = tuple(f"face-{i}" for i in range(68))
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand_names(side: str) -> tuple[str, ...]:
    """21 hand keypoints: root, then 4 joints per finger from the palm outwards."""
    return (f"{side}_hand_root",) + tuple(f"{side}_{f}{j}" for f in _FINGERS for j in range(1, 5))


def _hand_limbs(root: int) -> tuple[tuple[int, int], ...]:
    """20 hand links for a hand whose root has global index ``root``: root->f1->f2->f3->f4 per finger."""
    limbs = []
    for f in range(5):
        chain = [root] + [root + 1 + 4 * f + j for j in range(4)]
        limbs += list(itertools.pairwise(chain))
    return tuple(limbs)


# iBUG 68-point face mirror pairs, indices within the face block.
_FACE_FLIP_LOCAL = (
    *((i, 16 - i) for i in range(8)),  # jaw contour 0..16 (8 is the chin)
    *((17 + i, 26 - i) for i in range(5)),  # eyebrows 17..26
    (31, 35), (32, 34),  # nostrils (27..30 bridge and 33 tip are central)
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),  # outer lip (51, 57 central)
    (60, 64), (61, 63), (65, 67),  # inner lip (62, 66 central)
)  # fmt: skip

_WB_BODY, _WB_FOOT, _WB_FACE, _WB_LHAND, _WB_RHAND = (
    range(17), range(17, 23), range(23, 91), range(91, 112), range(112, 133),
)  # fmt: skip

# COCO-WholeBody official sigmas (COCO-WholeBody evaluation/myeval_wholebody.py, the same array as
# MMPose's coco_wholebody dataset info and xtcocotools), split per part.
_WB_SIGMAS_FOOT = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
_WB_SIGMAS_FACE = (
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037, 0.038,
    0.043, 0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009,
    0.007, 0.007, 0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007,
    0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008,
    0.009, 0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008,
)  # fmt: skip
_WB_SIGMAS_HAND = (
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024,
    0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
)  # fmt: skip

COCO_WHOLEBODY133 = Skeleton(
    name="coco_wholebody",
    keypoint_names=_COCO_NAMES + _FOOT_NAMES + _FACE_NAMES + _hand_names("left") + _hand_names("right"),
    flip_pairs=(
        _COCO_FLIP
        + ((17, 20), (18, 21), (19, 22))
        + tuple((_WB_FACE.start + a, _WB_FACE.start + b) for a, b in _FACE_FLIP_LOCAL)
        + tuple((_WB_LHAND.start + i, _WB_RHAND.start + i) for i in range(21))
    ),
    sigmas=_COCO_SIGMAS + _WB_SIGMAS_FOOT + _WB_SIGMAS_FACE + _WB_SIGMAS_HAND + _WB_SIGMAS_HAND,
    limbs=(
        _COCO_LIMBS
        + ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))  # ankle -> big toe, small toe, heel
        + _hand_limbs(_WB_LHAND.start)
        + _hand_limbs(_WB_RHAND.start)
    ),
    joint_weights=(1.0,) * 133,  # MMPose trains COCO-WholeBody with uniform weights.
    # MMPose's "upper"/"lower" types: face and hands belong to neither half.
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 23)),
    parts={
        "body": _WB_BODY, "foot": _WB_FOOT, "face": _WB_FACE, "lefthand": _WB_LHAND, "righthand": _WB_RHAND,
    },
)

# ------------------------------------------------------------------------------------------- MPII-16
MPII16 = Skeleton(
    name="mpii",
    keypoint_names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "upper_neck", "head_top",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ),
    # HRNet's pairs [[0,5],[1,4],[2,3],[10,15],[11,14],[12,13]], written (left, right).
    flip_pairs=((5, 0), (4, 1), (3, 2), (15, 10), (14, 11), (13, 12)),
    # MMPose mpii.py sigmas (adapted from COCO; MPII itself is scored by PCKh, these only serve OKS-NMS).
    sigmas=(
        0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026,
        0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062,
    ),
    limbs=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (8, 12), (12, 11), (11, 10), (8, 13), (13, 14), (14, 15),
    ),
    # HRNet's MPIIDataset keeps JointsDataset.joints_weight = 1 (uniform). MMPose's mpii.py instead uses
    # (1.5, 1.2, 1, 1, 1.2, 1.5, 1, 1, 1, 1, 1.5, 1.2, 1, 1, 1.2, 1.5).
    joint_weights=(1.0,) * 16,
    upper_body_ids=tuple(range(7, 16)),
    lower_body_ids=tuple(range(7)),
)

# ----------------------------------------------------------------------------------------- Human3.6M
H36M17 = Skeleton(
    name="h36m",
    keypoint_names=(
        "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "spine", "thorax", "neck_nose", "head",
        "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
    ),
    # (left, right): left_ids == VideoPose3D joints_left [4,5,6,11,12,13], right_ids == joints_right.
    flip_pairs=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
    sigmas=(),  # no OKS for Human3.6M (MPJPE); MMPose's h36m dataset info also has none.
    # VideoPose3D parents [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15] as (parent, child).
    limbs=(
        (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
        (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
    ),
    # HoT's per-joint MPJPE loss weights.
    joint_weights=(1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0, 1.5, 4.0, 4.0),
    upper_body_ids=tuple(range(7, 17)),
    lower_body_ids=tuple(range(7)),
)

SKELETONS: Mapping[str, Skeleton] = types.MappingProxyType(
    {s.name: s for s in (COCO17, COCO_WHOLEBODY133, MPII16, H36M17)}
)


# Names with the keypoint count, as the prediction API and the pictures spell them (API.md).
SKELETON_ALIASES: Mapping[str, str] = types.MappingProxyType(
    {"coco17": "coco", "coco_wholebody133": "coco_wholebody", "mpii16": "mpii", "h36m17": "h36m"}
)


def get_skeleton(name: str) -> Skeleton:
    """Return the skeleton registered as ``name`` (case-insensitive; ``-`` is read as ``_``).

    The names with the keypoint count (``coco17``, ``coco_wholebody133``, ``mpii16``, ``h36m17``) are aliases.

    Raises:
        UnknownSkeletonError: (a ``ConfigError`` and a ``KeyError``) listing the valid names.
    """
    key = str(name).strip().lower().replace("-", "_")
    key = SKELETON_ALIASES.get(key, key)
    try:
        return SKELETONS[key]
    except KeyError:
        valid = ", ".join(sorted(SKELETONS))
        raise UnknownSkeletonError(f"unknown skeleton {name!r}; valid names: {valid}") from None
