"""Task glue: what ties a model family, its data, codec, loss and metrics together for train/test."""
