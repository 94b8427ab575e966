"""docs/model-zoo.md is generated (scripts/make_model_zoo.py); check it still matches the code.

Every registered model must have a row, and the parameter and cost columns of a few cheap models must equal
what the profiler says now (a stale table fails here; regenerate it with the script).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from prunepose import create_model, list_models
from prunepose.profiling.flops import default_input_shape, profile_model

ZOO = Path(__file__).resolve().parents[1] / "docs" / "model-zoo.md"


def _rows() -> dict[str, list[str]]:
    rows = {}
    for line in ZOO.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] not in ("model", "---"):
            rows[cells[0]] = cells
    return rows


def test_every_registered_model_has_a_row() -> None:
    missing = sorted(set(list_models()) - set(_rows()))
    assert not missing, f"docs/model-zoo.md lacks {missing}: run scripts/make_model_zoo.py"


@pytest.mark.parametrize("name", ["gtpt_t", "hot_mixste_tiny", "mvppt_tiny"])
def test_cheap_rows_match_the_profiler(name: str) -> None:
    model = create_model(name).eval()
    rec = profile_model(model, default_input_shape(model))
    row = _rows()[name]
    assert row[3] == f"{rec['params'] / 1e6:.3f}"
    assert row[4] == f"{rec['macs_true']:.3f}"
    assert row[5] == f"{rec['macs_thop']:.3f}"
