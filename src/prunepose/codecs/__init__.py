"""Target codecs: how keypoints become training targets and how model outputs become keypoints."""
from prunepose.codecs.heatmap import HeatmapCodec, flip_heatmaps, input_to_image

__all__ = ["HeatmapCodec", "flip_heatmaps", "input_to_image"]
