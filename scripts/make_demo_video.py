"""Make the bundled demo videos ``walk_vtest.mp4`` and ``street_vtest.mp4`` (``src/prunepose/assets/``) from
OpenCV's ``vtest.avi``.

Source: ``vtest.avi`` (768x576, 10 fps, 795 frames, a fixed camera over a campus path) from the OpenCV
sample data, taken from the Debian package ``opencv-doc`` 4.6.0+dfsg-12 (bookworm), file
``usr/share/doc/opencv-doc/examples/data/vtest.avi``. The package's ``copyright`` file covers it by its
``Files: *`` stanza: Apache-2.0 AND BSD-3-Clause (OpenCV), so it may be redistributed with attribution.

What this script does to it (nothing else): keeps frames 610..669 (6 s) in which one pedestrian (a woman
in a dark coat) walks alone across the lawn, crops the fixed window x 192..511, y 336..575 (320x240 px, the
same window for every frame: no stabilisation or tracking), upscales it 2x with bicubic interpolation to
640x480 so the person is about 280 px tall on screen, and re-encodes it with OpenCV's 'mp4v' codec at the
original 10 fps. Upscaling adds no detail; it only makes the overlay readable.

``--clip street`` (the multi-person input of ``prunepose demo``): frames 120..199 (8 s) of the whole
768x576 frame, unchanged apart from the 'mp4v' re-encoding; 7 to 10 pedestrians are in view (counted with the
bundled person detector on every 20th frame of ``vtest.avi`` while choosing the segment).

Reproduce::

    cd /tmp && apt-get download opencv-doc && dpkg-deb -x opencv-doc_4.6.0+dfsg-12_all.deb opencv-doc
    python scripts/make_demo_video.py /tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi
    python scripts/make_demo_video.py --clip street /tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2

FIRST, LAST = 610, 669  # inclusive frame indices of vtest.avi
X0, Y0, W, H = 192, 336, 320, 240  # fixed crop window in vtest.avi pixels
SCALE = 2
ASSETS = Path(__file__).resolve().parents[1] / "src" / "prunepose" / "assets"
#: clip -> (first frame, last frame inclusive, crop x, y, w, h or None for the whole frame, scale, output)
CLIPS = {"walk": (FIRST, LAST, (X0, Y0, W, H), SCALE, ASSETS / "walk_vtest.mp4"),
         "street": (120, 199, None, 1, ASSETS / "street_vtest.mp4")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vtest", help="path to vtest.avi from the Debian opencv-doc package")
    parser.add_argument("--clip", choices=sorted(CLIPS), default="walk")
    parser.add_argument("--out", default=None, help="output file (default: the bundled asset of --clip)")
    args = parser.parse_args()
    first, last, crop_box, scale, default_out = CLIPS[args.clip]
    args.out = args.out or str(default_out)
    cap = cv2.VideoCapture(args.vtest)
    if not cap.isOpened():
        raise SystemExit(f"{args.vtest}: cannot open")
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    index = written = 0
    while index <= last:
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{args.vtest}: ended at frame {index}, expected at least {last + 1}")
        if index >= first:
            if crop_box is not None:
                x0, y0, w, h = crop_box
                frame = cv2.resize(frame[y0:y0 + h, x0:x0 + w], (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            writer.write(frame)
            written += 1
        index += 1
    assert writer is not None
    writer.release()
    print(f"{args.out}: {written} frames at {fps:g} fps, {Path(args.out).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
