"""Shared neural-network parts: attention, transformer blocks, positional encodings, backbones."""
