"""3D skeleton pictures: one plot, one rendered image, or an animation (mp4 / gif), always headless.

Why matplotlib with the Agg canvas: it is the only light dependency that draws a 3D skeleton with a proper
projection, and the Agg canvas renders to a pixel buffer without ever touching a display. The figure is built
once and only the artists' data change per frame, so an animation costs one canvas draw per frame.

Frames. Poses come from the lifters in the camera frame (x right, y down, z forward; metres, root-relative,
Human3.6M-17 order). They are drawn in a "world-like" plot frame ``(X, Y, Z) = (x, z, -y)`` so that up on the
screen is up for the person and depth runs away from the viewer; this is the y/z swap MMPose's 3D visualiser
does. With ``elev=0, azim=-90`` the view looks straight down the camera's optical axis: camera x goes to the
right and camera -y goes up, i.e. the picture matches the input video (tests rely on that).

The projection is orthographic by default: no perspective shortening, so limb lengths stay comparable over the
picture and a joint's screen position is an affine function of its coordinates.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prunepose.errors import ConfigError, DataError, PrunePoseError
from prunepose.skeletons import Skeleton, get_skeleton

__all__ = ["PosePlot3D", "animate_poses3d", "camera_to_plot", "plot_pose3d", "render_pose3d"]

# Side colours (matplotlib tab10): the subject's left in blue, right in red, the trunk in grey. Joints are
# orange, a colour no limb uses, so tests (and eyes) can find them.
LEFT_COLOUR, RIGHT_COLOUR, CENTRE_COLOUR, JOINT_COLOUR = "#1f77b4", "#d62728", "#555555", "#ff7f0e"


def _agg_figure(size_px: tuple[int, int], dpi: int = 100):  # noqa: ANN202  (matplotlib types are optional)
    """A Figure on an Agg canvas without pyplot, so no GUI backend is ever chosen or opened."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the install
        raise PrunePoseError("3D pictures need matplotlib: pip install 'prunepose[viz]'") from None
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _check_poses(poses: np.ndarray, skeleton: Skeleton, ndim: int) -> np.ndarray:
    """Validate shape ``(..., J, 3)`` against the skeleton and finiteness; returns float64."""
    arr = np.asarray(poses, dtype=np.float64)
    shape = "(J, 3)" if ndim == 2 else "(T, J, 3)"
    if arr.ndim != ndim or arr.shape[-1] != 3:
        raise DataError(f"3D pose: expected shape {shape}, got {tuple(arr.shape)}")
    if arr.shape[-2] != skeleton.num_keypoints:
        raise DataError(f"3D pose: {arr.shape[-2]} joints but skeleton {skeleton.name!r} has "
                        f"{skeleton.num_keypoints}")
    if ndim == 3 and arr.shape[0] == 0:
        raise DataError("3D poses: the sequence is empty (T = 0)")
    if not np.isfinite(arr).all():
        raise DataError("3D pose: contains NaN or infinite coordinates")
    return arr


def camera_to_plot(points: np.ndarray) -> np.ndarray:
    """Camera-frame points ``(..., 3)`` (x right, y down, z forward) -> plot frame ``(x, z, -y)``."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def _limb_colour(skeleton: Skeleton, a: int, b: int) -> str:
    left, right = set(skeleton.left_ids), set(skeleton.right_ids)
    if a in left or b in left:
        return LEFT_COLOUR
    if a in right or b in right:
        return RIGHT_COLOUR
    return CENTRE_COLOUR


def _view_box(poses: np.ndarray, radius: float | None) -> tuple[np.ndarray, float]:
    """Centre (plot frame) and half-size of the cube shown: the poses' bounding box, at least 1 m across."""
    pts = camera_to_plot(poses).reshape(-1, 3)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    if radius is None:
        radius = max(0.5, float((hi - lo).max()) / 2 * 1.1)
    return centre, float(radius)


class PosePlot3D:
    """One 3D axes with a skeleton's limb lines and joint markers whose data can be swapped per frame.

    Why a class: an animation updates the same artists instead of building a figure per frame (building
    is ~10x slower than drawing).
    """

    def __init__(self, skeleton: str | Skeleton = "h36m17", size: tuple[int, int] = (480, 480), ax=None,  # noqa: ANN001
                 elev: float = 15.0, azim: float = -70.0, ortho: bool = True, title: str | None = None,
                 dpi: int = 100) -> None:
        self.skeleton = skeleton if isinstance(skeleton, Skeleton) else get_skeleton(skeleton)
        self._own_figure = ax is None
        if ax is None:
            if size[0] < 16 or size[1] < 16:
                raise ConfigError(f"3D plot size {size}: width and height must be >= 16 px")
            self.fig = _agg_figure(size, dpi)
            ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0), projection="3d")
        else:
            if getattr(ax, "name", "") != "3d":
                raise ConfigError("plot_pose3d: ax must be a 3D axes (projection='3d')")
            self.fig = ax.figure
        self.ax = ax
        self._title = None
        ax.view_init(elev=elev, azim=azim)
        ax.set_proj_type("ortho" if ortho else "persp")
        ax.set_box_aspect((1, 1, 1), zoom=0.9)  # room for the axis labels inside the figure
        ax.computed_zorder = False  # joints stay on top of limbs whatever the depth order
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_ticklabels([])
        ax.set_xlabel("x")
        ax.set_ylabel("depth")
        ax.set_zlabel("up")
        if title:
            self.set_title(title)
        self.lines = [ax.plot([0, 0], [0, 0], [0, 0], color=_limb_colour(self.skeleton, a, b), lw=2.5,
                              zorder=1)[0] for a, b in self.skeleton.limbs]
        self.joints = ax.scatter([0] * self.skeleton.num_keypoints, [0] * self.skeleton.num_keypoints,
                                 [0] * self.skeleton.num_keypoints, color=JOINT_COLOUR, s=14, depthshade=False,
                                 zorder=2)

    def set_title(self, title: str) -> None:
        """A caption: inside the figure's top edge for figures made here (the axes fill them), else the axes title."""
        if not self._own_figure:
            self.ax.set_title(title, fontsize=9)
        elif self._title is None:
            self._title = self.fig.text(0.5, 0.98, title, ha="center", va="top", fontsize=10)
        else:
            self._title.set_text(title)

    def set_limits(self, centre: np.ndarray, radius: float) -> None:
        """Show the cube ``centre ± radius`` (plot frame); equal on all axes so lengths are comparable."""
        self.ax.set_xlim(centre[0] - radius, centre[0] + radius)
        self.ax.set_ylim(centre[1] - radius, centre[1] + radius)
        self.ax.set_zlim(centre[2] - radius, centre[2] + radius)

    def update(self, pose: np.ndarray) -> None:
        """Move the artists to ``pose`` (J, 3), camera frame."""
        p = camera_to_plot(pose)
        for line, (a, b) in zip(self.lines, self.skeleton.limbs):
            line.set_data_3d(p[[a, b], 0], p[[a, b], 1], p[[a, b], 2])
        self.joints._offsets3d = (p[:, 0], p[:, 1], p[:, 2])

    def to_bgr(self) -> np.ndarray:
        """Draw the canvas and return it as an (H, W, 3) BGR uint8 image (OpenCV order)."""
        self.fig.canvas.draw()
        rgba = np.asarray(self.fig.canvas.buffer_rgba())
        return np.ascontiguousarray(rgba[..., 2::-1])


def plot_pose3d(pose: np.ndarray, skeleton: str = "h36m17", ax=None, title: str | None = None, *,  # noqa: ANN001
                elev: float = 15.0, azim: float = -70.0, radius: float | None = None, ortho: bool = True,
                size: tuple[int, int] = (480, 480)):  # noqa: ANN201  (matplotlib Figure)
    """Plot one 3D pose ``(J, 3)`` (camera frame, metres) and return the matplotlib Figure.

    ``ax``: an existing 3D axes to draw into (its figure is returned); otherwise a new Agg figure of
    ``size`` pixels. ``radius``: half-size of the shown cube in metres (default: fit the pose, >= 0.5 m).
    """
    return _single(pose, skeleton, ax, title, elev, azim, radius, ortho, size).fig


def _single(pose: np.ndarray, skeleton: str, ax, title: str | None, elev: float, azim: float,  # noqa: ANN001
            radius: float | None, ortho: bool, size: tuple[int, int]) -> PosePlot3D:
    plot = PosePlot3D(skeleton, size=size, ax=ax, elev=elev, azim=azim, ortho=ortho, title=title)
    arr = _check_poses(pose, plot.skeleton, 2)
    plot.set_limits(*_view_box(arr[None], radius))
    plot.update(arr)
    return plot


def render_pose3d(pose: np.ndarray, size: tuple[int, int] = (480, 480), skeleton: str = "h36m17",
                  elev: float = 15.0, azim: float = -70.0, *, radius: float | None = None, ortho: bool = True,
                  title: str | None = None) -> np.ndarray:
    """Render one 3D pose ``(J, 3)`` to a BGR image of ``size = (w, h)`` pixels (for overlays and videos)."""
    return _single(pose, skeleton, None, title, elev, azim, radius, ortho, size).to_bgr()


def iter_rendered_poses(poses: np.ndarray, skeleton: str = "h36m17", size: tuple[int, int] = (480, 480),
                        elev: float = 15.0, azim: float = -70.0, radius: float | None = None,
                        titles: Sequence[str] | None = None):  # noqa: ANN201  (generator of BGR images)
    """One BGR image per frame of ``poses`` (T, J, 3), lazily, all with the same view box (no jumping axes).

    The input is checked at once (not at the first frame), so bad poses fail before any file is opened.
    """
    plot = PosePlot3D(skeleton, size=size, elev=elev, azim=azim)
    arr = _check_poses(poses, plot.skeleton, 3)
    if titles is not None and len(titles) != arr.shape[0]:
        raise DataError(f"3D poses: {len(titles)} titles for {arr.shape[0]} frames")
    # Root-relative poses: centre the box on the sequence, so the person stays put while moving limbs.
    plot.set_limits(*_view_box(arr, radius))

    def frames():  # noqa: ANN202
        for t in range(arr.shape[0]):
            plot.update(arr[t])
            if titles is not None:
                plot.set_title(titles[t])
            yield plot.to_bgr()

    return frames()


def animate_poses3d(poses: np.ndarray, out_path: str | Path, fps: float = 25, skeleton: str = "h36m17", *,
                    size: tuple[int, int] = (480, 480), elev: float = 15.0, azim: float = -70.0,
                    radius: float | None = None) -> Path:
    """Write an animation of ``poses`` (T, J, 3) to ``out_path`` (.mp4 via OpenCV 'mp4v', .gif via Pillow).

    One frame per pose, ``fps`` frames per second, a fixed view box over the whole sequence. Returns the path.
    """
    out = Path(out_path)
    suffix = out.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ConfigError(f"{out}: unsupported animation format {suffix or '(none)'!r}; use .mp4 or .gif")
    if not fps > 0:
        raise ConfigError(f"animate_poses3d: fps must be > 0, got {fps}")
    frames = iter_rendered_poses(poses, skeleton, size, elev, azim, radius)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        write_mp4(frames, out, fps)
    else:
        write_gif(frames, out, fps)
    return out


def write_mp4(frames, path: Path, fps: float) -> int:  # noqa: ANN001  (iterable of BGR images)
    """Write BGR frames with OpenCV's 'mp4v' codec (:class:`~prunepose.viz.video.Mp4Writer`); returns the count."""
    from prunepose.viz.video import Mp4Writer

    with Mp4Writer(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    if writer.count == 0:
        raise DataError(f"{path}: no frames to write")
    return writer.count


def write_gif(frames, path: Path, fps: float) -> int:  # noqa: ANN001  (iterable of BGR images)
    """Write BGR frames as a looping GIF with Pillow (adaptive palette per frame); returns the frame count.

    Pillow needs every frame at once, so a GIF holds the whole sequence in memory; prefer .mp4 for long ones.
    """
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(f[..., ::-1])) for f in frames]
    if not images:
        raise DataError(f"{path}: no frames to write")
    # GIF stores delays in 1/100 s; Pillow rounds the milliseconds it is given.
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   optimize=False)
    return len(images)
