"""3D skeleton pictures (prunepose.viz.draw3d) and 2D overlays for every keypoint layout.

The 3D checks find the orange joint markers in the rendered pixels and compare their centres with positions
worked out by hand for an orthographic front view (camera x -> right, camera y -> down, depth invisible), and
with matplotlib's own projection for the default oblique view.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from prunepose.errors import ConfigError, DataError
from prunepose.skeletons import get_skeleton
from prunepose.viz.draw2d import draw_skeleton
from prunepose.viz.draw3d import animate_poses3d, plot_pose3d, render_pose3d
from prunepose.viz.video import count_video_frames

# Joints away from the pelvis (all others sit at the origin): left wrist, right wrist, right ankle (H36M-17).
MOVED = {13: (0.5, 0.0, 0.0), 16: (0.0, -0.5, 0.3), 3: (-0.4, 0.4, -0.2)}


def _pose() -> np.ndarray:
    pose = np.zeros((17, 3))
    for j, xyz in MOVED.items():
        pose[j] = xyz
    return pose


def _joint_centres(image_bgr: np.ndarray) -> np.ndarray:
    """Centres (N, 2) x, y of the orange (#ff7f0e) joint blobs; limbs are blue, red or grey."""
    b, g, r = (image_bgr[..., i].astype(int) for i in range(3))
    mask = ((r > 230) & (g > 110) & (g < 145) & (b < 60)).astype(np.uint8)
    n, _, stats, centres = cv2.connectedComponentsWithStats(mask)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 4]
    return centres[keep]


def _front_view(radius: float) -> dict[str, np.ndarray]:
    img = render_pose3d(_pose(), size=(400, 400), elev=0, azim=-90, radius=radius)
    c = _joint_centres(img)
    assert len(c) == 4, f"expected 4 joint blobs (origin + 3 moved joints), found {len(c)}"
    by = {"left_wrist": c[np.argmax(c[:, 0])], "right_wrist": c[np.argmin(c[:, 1])],
          "right_ankle": c[np.argmin(c[:, 0])]}
    rest = [p for p in c if not any(np.array_equal(p, q) for q in by.values())]
    assert len(rest) == 1
    by["origin"] = rest[0]
    return by


def test_front_view_puts_joints_where_the_camera_sees_them() -> None:
    p = _front_view(radius=1.0)
    o = p["origin"]
    s = (p["left_wrist"][0] - o[0]) / 0.5  # px per metre, from the joint at x = +0.5 m
    assert s > 50
    # left wrist (0.5, 0, 0): straight right of the pelvis
    assert abs(p["left_wrist"][1] - o[1]) < 1.0
    # right wrist (0, -0.5, 0.3): straight above (camera y points down), its 0.3 m depth invisible from the front
    np.testing.assert_allclose(p["right_wrist"] - o, [0.0, -0.5 * s], atol=1.0)
    # right ankle (-0.4, 0.4, -0.2): left of and below the pelvis by the same 0.4 m x s
    np.testing.assert_allclose(p["right_ankle"] - o, [-0.4 * s, 0.4 * s], atol=1.0)


def test_front_view_scale_is_inverse_to_the_shown_radius() -> None:
    """Orthographic view of the cube centre ± radius: halving the radius doubles the pixels per metre."""
    wide, tight = _front_view(radius=1.0), _front_view(radius=0.5)
    s_wide = np.linalg.norm(wide["right_ankle"] - wide["origin"])
    s_tight = np.linalg.norm(tight["right_ankle"] - tight["origin"])
    assert s_tight / s_wide == pytest.approx(2.0, rel=0.02)


def test_default_view_matches_the_axes_projection() -> None:
    """Oblique default view: each joint blob sits where matplotlib's projection + transData put the joint
    (plot frame = (x, z, -y)); the image is in OpenCV order (BGR, rows from the top)."""
    from mpl_toolkits.mplot3d import proj3d

    pose = _pose()
    fig = plot_pose3d(pose, size=(400, 400), radius=1.0)
    fig.canvas.draw()
    ax = fig.axes[0]
    rgba = np.asarray(fig.canvas.buffer_rgba())
    img = np.ascontiguousarray(rgba[..., 2::-1])
    found = _joint_centres(img)
    height = img.shape[0]
    for j in (0, *MOVED):
        x, y, z = pose[j]
        px, py, _ = proj3d.proj_transform(x, z, -y, ax.get_proj())
        dx, dy = ax.transData.transform((px, py))
        expected = np.array([dx, height - dy])
        dist = np.linalg.norm(found - expected, axis=1).min()
        assert dist < 1.5, f"joint {j}: nearest blob {dist:.1f} px from the projected position"
    np.testing.assert_array_equal(render_pose3d(pose, size=(400, 400), radius=1.0), img)


def _walk(frames: int) -> np.ndarray:
    t = np.arange(frames)[:, None, None]
    return _pose()[None] + 0.05 * np.sin(t + np.arange(17)[None, :, None])


def test_mp4_animation_has_one_frame_per_pose(tmp_path: Path) -> None:
    path = animate_poses3d(_walk(7), tmp_path / "a.mp4", fps=5, size=(160, 160))
    assert count_video_frames(path) == 7
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 160)
    cap.release()


def test_mp4_writer_pads_odd_sizes_and_keeps_every_frame(tmp_path: Path) -> None:
    from prunepose.viz.video import Mp4Writer

    with Mp4Writer(tmp_path / "odd.mp4", fps=10) as w:
        for v in (0, 120, 240):
            w.write(np.full((21, 33, 3), min(v, 255), np.uint8))
    cap = cv2.VideoCapture(str(tmp_path / "odd.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (34, 22)
    means = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        means.append(float(frame[:21, :33].mean()))
    cap.release()
    assert len(means) == 3
    np.testing.assert_allclose(means, [0, 120, 240], atol=6)  # lossy codec, flat frames survive closely


def test_gif_animation_has_one_frame_per_pose(tmp_path: Path) -> None:
    path = animate_poses3d(_walk(5), tmp_path / "a.gif", fps=10, size=(120, 120))
    with Image.open(path) as im:
        assert im.n_frames == 5
        assert im.info["duration"] == 100  # ms per frame at 10 fps
        assert im.size == (120, 120)


@pytest.mark.parametrize(("poses", "error"), [
    (np.zeros((17, 2)), DataError),  # not 3D
    (np.zeros((16, 3)), DataError),  # wrong joint count for h36m17
    (np.full((17, 3), np.nan), DataError),
])
def test_bad_pose_is_refused(poses: np.ndarray, error: type) -> None:
    with pytest.raises(error):
        render_pose3d(poses)


def test_bad_animation_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="avi"):
        animate_poses3d(_walk(2), tmp_path / "a.avi")
    with pytest.raises(DataError, match="empty"):
        animate_poses3d(np.zeros((0, 17, 3)), tmp_path / "a.mp4")
    with pytest.raises(ConfigError, match="unknown skeleton"):
        render_pose3d(_pose(), skeleton="h36m18")


def test_rendering_never_needs_a_display(tmp_path: Path) -> None:
    """With a GUI backend requested and no display, rendering still works and pyplot is never imported."""
    code = ("import sys, numpy as np\n"
            "from prunepose.viz.draw3d import render_pose3d\n"
            "img = render_pose3d(np.zeros((17, 3)), size=(64, 64))\n"
            "assert img.shape == (64, 64, 3)\n"
            "print('pyplot' if 'matplotlib.pyplot' in sys.modules else 'no-pyplot')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(MPLBACKEND="TkAgg", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "no-pyplot"


@pytest.mark.parametrize("layout", ["coco17", "coco_wholebody133", "mpii16", "h36m17"])
def test_2d_overlay_draws_every_limb_and_joint(layout: str) -> None:
    """Keypoints on a spiral: the midpoint of every limb is coloured and every joint centre is white."""
    skel = get_skeleton(layout)
    k = skel.num_keypoints
    angle = np.linspace(0, 6 * np.pi, k, endpoint=False)
    radius = 40 + 200 * np.arange(k) / k
    kpts = np.stack([300 + radius * np.cos(angle), 300 + radius * np.sin(angle)], axis=1)
    img = draw_skeleton(np.zeros((600, 600, 3), np.uint8), kpts, None, skel, radius=2, thickness=2)
    for a, b in skel.limbs:
        mid = np.round((kpts[a] + kpts[b]) / 2).astype(int)
        assert img[mid[1], mid[0]].max() > 0, f"{layout}: limb {a}-{b} not drawn"
    for x, y in np.round(kpts).astype(int):
        assert img[y, x].tolist() == [255, 255, 255]
    # a low score hides the joint and its limbs
    scores = np.ones(k)
    scores[0] = 0.0
    hidden = draw_skeleton(np.zeros((600, 600, 3), np.uint8), kpts, scores, skel, radius=2, thickness=2)
    x0, y0 = np.round(kpts[0]).astype(int)
    assert hidden[y0, x0].tolist() != [255, 255, 255]  # joints are white, limbs never are (saturated colours)


def test_plot_into_a_given_3d_axes() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1, projection="3d"), fig.add_subplot(1, 2, 2)
    assert plot_pose3d(_pose(), ax=left, title="mine") is fig
    assert left.get_title() == "mine" and len(left.lines) == len(get_skeleton("h36m17").limbs)
    with pytest.raises(ConfigError, match="3D axes"):
        plot_pose3d(_pose(), ax=right)
