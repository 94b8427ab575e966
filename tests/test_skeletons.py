"""Skeleton data checked against independent references (pycocotools, the COCO annotation file)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from prunepose.errors import ConfigError
from prunepose.paths import shared_data_dir
from prunepose.skeletons import COCO17, COCO_WHOLEBODY133, H36M17, MPII16, SKELETONS, Skeleton, get_skeleton

ALL = (COCO17, COCO_WHOLEBODY133, MPII16, H36M17)


@pytest.mark.parametrize("skel", ALL, ids=lambda s: s.name)
def test_flip_index_is_an_involution_within_range(skel: Skeleton) -> None:
    perm = skel.flip_index
    k = skel.num_keypoints
    assert sorted(perm) == list(range(k))
    assert all(perm[perm[i]] == i for i in range(k))
    for a, b in skel.flip_pairs:
        assert 0 <= a < k and 0 <= b < k and perm[a] == b
    assert len(skel.joint_weights) == k
    assert len(skel.sigmas) in (0, k)
    assert all(0 <= i < k for limb in skel.limbs for i in limb)


@pytest.mark.parametrize("skel", (COCO17, COCO_WHOLEBODY133, MPII16, H36M17), ids=lambda s: s.name)
def test_named_flip_pairs_swap_left_and_right(skel: Skeleton) -> None:
    """Every pair of side-named joints maps 'left_*' to 'right_*' with the same suffix."""
    names = skel.keypoint_names
    for a, b in skel.flip_pairs:
        if names[a].startswith("left_"):
            assert names[b] == "right_" + names[a][len("left_") :]
    assert len(skel.left_ids) == len(skel.right_ids) == len(skel.flip_pairs)


def test_coco_sigmas_match_pycocotools() -> None:
    from pycocotools.cocoeval import COCOeval

    ref = COCOeval(iouType="keypoints").params.kpt_oks_sigmas
    np.testing.assert_allclose(COCO17.sigmas, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(COCO_WHOLEBODY133.sigmas[:17], ref, rtol=0, atol=1e-12)


def test_coco_names_and_limbs_match_annotation_file() -> None:
    root = shared_data_dir()
    if root is None or not (root / "coco-mini/annotations/person_keypoints_train2017.json").is_file():
        pytest.skip("shared COCO-mini data not available (set PRUNEPOSE_DATA)")
    cat = json.loads((root / "coco-mini/annotations/person_keypoints_train2017.json").read_text())[
        "categories"
    ][0]
    assert tuple(cat["keypoints"]) == COCO17.keypoint_names
    assert {tuple(sorted((a - 1, b - 1))) for a, b in cat["skeleton"]} == {
        tuple(sorted(limb)) for limb in COCO17.limbs
    }


def test_coco_weights_groups() -> None:
    assert COCO17.joint_weights == (1, 1, 1, 1, 1, 1, 1, 1.2, 1.2, 1.5, 1.5, 1, 1, 1.2, 1.2, 1.5, 1.5)
    assert COCO17.groups == ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9, 10), (11, 12, 13, 14, 15, 16))
    assert COCO17.flip_index == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def test_wholebody_layout() -> None:
    wb = COCO_WHOLEBODY133
    assert wb.num_keypoints == 133 and len(wb.sigmas) == 133
    assert wb.keypoint_names[:17] == COCO17.keypoint_names
    assert dict(wb.parts) == {
        "body": range(0, 17),
        "foot": range(17, 23),
        "face": range(23, 91),
        "lefthand": range(91, 112),
        "righthand": range(112, 133),
    }
    assert sum(len(r) for r in wb.parts.values()) == 133
    assert wb.keypoint_names[91] == "left_hand_root" and wb.keypoint_names[112] == "right_hand_root"
    # Hands mirror index by index; both hands share one sigma list.
    perm = wb.flip_index
    assert all(perm[91 + i] == 112 + i for i in range(21))
    assert wb.sigmas[91:112] == wb.sigmas[112:133]
    # Spot values of the official COCO-WholeBody sigmas: first foot, first face, a hand root.
    assert (wb.sigmas[17], wb.sigmas[23], wb.sigmas[91]) == (0.068, 0.042, 0.029)
    # Face (iBUG 68): chin (face-8), nose bridge and tip are central; jaw ends swap.
    face0 = wb.parts["face"].start
    for local in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert perm[face0 + local] == face0 + local
    assert perm[face0] == face0 + 16 and perm[face0 + 36] == face0 + 45


def test_mpii_and_h36m() -> None:
    assert MPII16.num_keypoints == 16
    assert {frozenset(p) for p in MPII16.flip_pairs} == {
        frozenset(p) for p in ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
    }
    assert MPII16.keypoint_names[0] == "right_ankle" and MPII16.keypoint_names[15] == "left_wrist"
    assert H36M17.left_ids == (4, 5, 6, 11, 12, 13)
    assert H36M17.right_ids == (1, 2, 3, 14, 15, 16)
    assert H36M17.joint_weights == (1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4)
    assert H36M17.keypoint_names[0] == "pelvis"


def test_get_skeleton() -> None:
    assert get_skeleton("COCO") is COCO17
    assert get_skeleton("coco_wholebody") is COCO_WHOLEBODY133
    assert get_skeleton("Mpii") is MPII16 and get_skeleton("h36m") is H36M17
    assert set(SKELETONS) == {"coco", "coco_wholebody", "mpii", "h36m"}
    with pytest.raises(ConfigError) as info:
        get_skeleton("crowdpose")
    assert isinstance(info.value, KeyError)
    assert "coco_wholebody" in str(info.value) and "mpii" in str(info.value)


def test_invalid_skeleton_rejected() -> None:
    with pytest.raises(ConfigError):
        Skeleton("bad", ("a", "b"), ((0, 2),), (), (), (1.0, 1.0), (), ())
