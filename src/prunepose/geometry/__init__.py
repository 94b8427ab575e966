"""Camera geometry, rigid/similarity alignment and multi-view triangulation for 3D pose.

Why a package of its own: data loaders (projecting mocap to "GT 2D"), metrics (P-MPJPE) and
visualisation all need the same camera model and alignment, and none of them may import models.
"""
from prunepose.geometry.camera import (
    Camera,
    camera_to_world,
    denormalize_screen,
    load_cameras,
    normalize_screen,
    project,
    world_to_camera,
)
from prunepose.geometry.procrustes import procrustes_align, procrustes_transform
from prunepose.geometry.triangulation import (
    Triangulation,
    projection_matrices,
    reprojection_error,
    triangulate,
    triangulate_cameras,
    triangulate_dlt,
    triangulate_robust,
    undistort_points,
)

__all__ = [
    "Camera",
    "camera_to_world",
    "denormalize_screen",
    "load_cameras",
    "normalize_screen",
    "procrustes_align",
    "procrustes_transform",
    "project",
    "projection_matrices",
    "reprojection_error",
    "Triangulation",
    "triangulate",
    "triangulate_cameras",
    "triangulate_dlt",
    "triangulate_robust",
    "undistort_points",
    "world_to_camera",
]
