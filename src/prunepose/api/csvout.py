"""Per-person, per-frame CSV of 2D predictions (``prunepose predict --csv``).

Why besides the COCO JSON: spreadsheets, pandas and video-analysis tools read one flat table with a row per
person per frame, a stable ``track_id`` column and named keypoint columns, without knowing COCO's
``[x, y, s] * K`` layout. Values are written with fixed decimals; absent values (no track on still images)
are empty cells, never NaN.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from prunepose.atomic import atomic_write


def csv_header(keypoint_names: list[str]) -> list[str]:
    cols = ["image_id", "frame_index", "name", "person", "track_id", "score", "box_x1", "box_y1", "box_x2",
            "box_y2", "box_score"]
    for n in keypoint_names:
        cols += [f"{n}_x", f"{n}_y", f"{n}_score"]
    return cols


def csv_rows(res: Any) -> list[list[Any]]:
    """One row per person of a :class:`~prunepose.api.results.Results2D`, in :func:`csv_header` order."""
    scores = res.person_scores() if len(res) else []
    rows = []
    for p in range(len(res)):
        row: list[Any] = [res.image_id, "" if res.frame_index is None else res.frame_index,
                          res.extra.get("name", ""), p, "" if res.track_ids is None else int(res.track_ids[p]),
                          f"{float(scores[p]):.6f}"]
        row += [f"{float(v):.2f}" for v in res.boxes[p]] + [f"{float(res.box_scores[p]):.4f}"]
        for (x, y), s in zip(res.keypoints[p], res.scores[p]):
            row += [f"{float(x):.2f}", f"{float(y):.2f}", f"{float(s):.4f}"]
        rows.append(row)
    return rows


class CsvWriter:
    """Rows accumulated in memory, written atomically by :meth:`flush` (called with the JSON's flushes)."""

    def __init__(self, path: Path, keypoint_names: list[str]) -> None:
        self.path = path
        self.header = csv_header(keypoint_names)
        self.rows: list[list[Any]] = []

    def add(self, res: Any) -> None:
        self.rows += csv_rows(res)

    def flush(self) -> Path:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        data = buf.getvalue().encode()
        return atomic_write(self.path, lambda f: f.write(data))
