"""The result of :func:`bigbench.compare`: :class:`bigbench.comparison.Comparison` and its JSON.

Imported only when a comparison is made (it loads the pydantic record models).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from bigbench.comparison import Comparison as _Base


@dataclass
class Comparison(_Base):
    """:class:`bigbench.comparison.Comparison` with ``passed``, ``to_dict()`` and ``to_json()``.

    Attributes:
        rows: One :class:`bigbench.comparison.Row` per matched point and metric: ``point``,
            ``metric``, ``base``, ``new``, ``ratio``, ``change_pct``, ``within_noise``,
            ``regression`` (None figures where a side did not measure the metric).
        only_base: Ids of points only the base has.
        only_new: Ids of points only the new side has.
        env_warnings: How the two environments differ (device, versions, clocks).
    """

    @property
    def passed(self) -> bool:
        """True when no metric regressed (``bigbench compare`` would exit 0)."""
        return not self.regressions

    def to_dict(self) -> dict[str, Any]:
        """The comparison in the shape ``bigbench compare --json`` prints."""
        return {"rows": [asdict(r) for r in self.rows],
                "only_base": list(self.only_base), "only_new": list(self.only_new),
                "env_warnings": list(self.env_warnings),
                "regressions": [f"{r.point} {r.metric}" for r in self.regressions]}

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def of(cls, result: _Base) -> Comparison:
        """The same comparison as this class."""
        return cls(rows=list(result.rows), only_base=list(result.only_base),
                   only_new=list(result.only_new), env_warnings=list(result.env_warnings))
