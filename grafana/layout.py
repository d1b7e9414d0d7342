"""Placing panels on Grafana's 24-column grid, in reading order."""

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as model


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new line.

    Rows are expanded rows in the flat panel list, which is how Grafana stores them
    (an expanded row owns the panels below it, not a nested list).
    """

    WIDTH = 24

    def __init__(self) -> None:
        self.panels: list[model.Panel | model.RowPanel] = []
        self._x = 0
        self._y = 0
        self._line_height = 0

    def _new_line(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def row(self, title: str) -> None:
        if self._x:
            self._new_line()
        self.panels.append(
            model.RowPanel(
                title=title, collapsed=False, grid_pos=model.GridPos(h=1, w=24, y=self._y)
            )
        )
        self._y += 1

    def add(self, panel: cogbuilder.Builder[model.Panel], w: int, h: int) -> None:
        if self._x + w > self.WIDTH:
            self._new_line()
        built = panel.build()
        built.grid_pos = model.GridPos(h=h, w=w, x=self._x, y=self._y)
        self.panels.append(built)
        self._x += w
        self._line_height = max(self._line_height, h)


def finish(board: dashboard.Dashboard, layout: Layout) -> model.Dashboard:
    """Builds the dashboard with the laid-out panels, numbered in reading order."""
    built = board.build()
    for number, panel in enumerate(layout.panels, start=1):
        panel.id_val = number
    built.panels = list(layout.panels)
    return built
