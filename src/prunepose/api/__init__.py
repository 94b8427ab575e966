"""User-facing prediction API: :class:`PoseEstimator2D` (images/videos -> 2D) and :class:`Lifter3D` (2D -> 3D).

Kept apart from the model code so that importing ``prunepose`` stays cheap; the classes are re-exported
lazily from the package root.
"""
