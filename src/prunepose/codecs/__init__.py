"""Target codecs: how keypoints become training targets and how model outputs become keypoints."""
from prunepose.codecs.heatmap import HeatmapCodec, flip_heatmaps, input_to_image
from prunepose.codecs.simcc import SimCCCodec, flip_simcc, flip_test_logits

__all__ = ["HeatmapCodec", "SimCCCodec", "flip_heatmaps", "flip_simcc", "flip_test_logits", "input_to_image"]
