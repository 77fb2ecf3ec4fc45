"""The drill report's chart: whole step titles, and an RTO panel that reads at any ratio."""

from __future__ import annotations

from typing import Any

import pytest

from workers.runbooks.chart import draw_chart, render_chart
from workers.runbooks.files import load_runbook, runbook_dir

LONG = (
    "Restore the PostgreSQL cluster from the newest base backup into a brand new instance "
    "called postgres-restore-0 and replay every archived WAL segment up to the restore point"
)


def summary(measured: float, *, extra_title: str | None = None) -> dict[str, Any]:
    """A drill's report summary, with the shipped dr-test runbook's steps."""
    runbook = load_runbook(runbook_dir() / "dr-test.yaml").runbook
    titles = [step.title for step in runbook.steps] + ([extra_title] if extra_title else [])
    each = measured / len(titles)
    return {
        "run_id": "dr-20261204T214210Z-7f3a",
        "title": runbook.title,
        "result": "done",
        "rto_objective_seconds": 4 * 3600.0,
        "rto_seconds": measured,
        "rto_met": measured <= 4 * 3600,
        "steps": [
            {"title": t, "status": "done", "offset_seconds": i * each, "seconds": each}
            for i, t in enumerate(titles)
        ],
    }


@pytest.fixture
def close() -> Any:
    from matplotlib import pyplot

    yield
    pyplot.close("all")


def test_every_step_label_is_the_whole_title_and_labels_never_overlap(close: None) -> None:
    facts = summary(15.9, extra_title=LONG)
    figure = draw_chart(facts)
    timeline = figure.axes[0]
    labels = timeline.get_yticklabels()
    assert [" ".join(label.get_text().split()) for label in labels] == [
        step["title"] for step in facts["steps"]
    ]
    renderer = figure.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    for above, below in zip(boxes, boxes[1:], strict=False):
        assert not above.overlaps(below)
    # Everything drawn lies inside the saved image: nothing cut at the edges.
    saved = figure.get_tightbbox(renderer)
    for label in labels:
        box = label.get_window_extent(renderer).transformed(figure.dpi_scale_trans.inverted())
        assert saved.x0 <= box.x0 and box.x1 <= saved.x1
    assert render_chart(facts).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("measured", "said"),
    [(5.0, "5.0s = <0.1% of the 4h RTO"), (2 * 3600, "2h = 50% of the 4h RTO")],
)
def test_the_rto_panel_reads_whether_seconds_or_hours_stand_against_hours(
    close: None, measured: float, said: str
) -> None:
    figure = draw_chart(summary(measured))
    panel = figure.axes[1]
    assert panel.get_xscale() == "log"
    assert said in [text.get_text() for text in panel.texts]
    [bar] = panel.patches
    renderer = figure.canvas.get_renderer()
    # A bar of seconds against hours is still a bar people can see.
    share = bar.get_window_extent(renderer).width / panel.get_window_extent(renderer).width
    assert share > 0.2
