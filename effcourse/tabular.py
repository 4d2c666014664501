"""How a measured table shows itself: as text in a terminal and as HTML in Jupyter and on the
website, with its title above and the conditions of the measurement below. Shared by models
measured together (`report.Comparison`), policies trained together (`training.PolicyComparison`)
and energy measurements (`joules.EnergyMeasurement`)."""
from __future__ import annotations

import html


class TableDisplay:
    """Mixin: `_shown()` (a pandas DataFrame) under the `title` attribute if there is one (not
    declared here: a dataclass would take it for a default), with `conditions()` below."""

    WIDTH = 100  # characters per line of the text form

    def _shown(self):
        raise NotImplementedError

    def conditions(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        import pandas as pd

        with pd.option_context("display.width", self.WIDTH, "display.max_columns", None):
            title = getattr(self, "title", "")
            head = f"{title}\n" if title else ""
            return f"{head}{self._shown().to_string()}\n{self.conditions()}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        title = getattr(self, "title", "")
        head = f"<p><b>{html.escape(title)}</b></p>" if title else ""
        return f"{head}{self._shown().to_html()}<p style='font-size:small'>{html.escape(self.conditions())}</p>"
