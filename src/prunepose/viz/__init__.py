"""Pictures: skeleton overlays, kept-token masks and attention maps (OpenCV only, never opens a window)."""
