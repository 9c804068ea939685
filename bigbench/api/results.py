"""What the Python API returns: the typed documents the CLI writes, with their file's path.

Must stay cheap to import (``import bigbench`` loads it): pydantic models and pandas are only
imported by the functions that need them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

    from bigbench.records import (
        BenchDocument,
        BenchPoint,
        OptimizeDocument,
        OptimizeVariant,
        RunRecord,
        SweepDocument,
    )


def _json_copy(document: dict[str, Any]) -> dict[str, Any]:
    """A deep copy in exactly the form the JSON file holds (tuples become lists)."""
    return json.loads(json.dumps(document, allow_nan=False))


@dataclass
class RunResult:
    """A finished training run (``bigbench train``).

    Attributes:
        run_dir: The run directory (config.yaml, run.json, metrics.jsonl, weights).
        record: run.json as the typed :class:`~bigbench.records.RunRecord`.
        status: ``"completed"``, ``"interrupted"`` (Ctrl-C; a checkpoint was saved) or
            ``"failed"`` (run.json holds the error).
        exit_code: What ``bigbench train`` would exit with: 0, 1 when the run failed, 130/143
            when interrupted.
        warnings: Things a user must hear about (low-quality energy, for example).
    """

    run_dir: Path | None
    record: RunRecord
    status: str
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)
    _document: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when the run completed."""
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        """run.json as a plain dict (a copy, equal to the file on disk)."""
        return _json_copy(self._document)

    def to_json(self, indent: int | None = 2) -> str:
        """run.json as JSON text."""
        return json.dumps(self._document, indent=indent, allow_nan=False)


@dataclass
class DocumentResult:
    """A finished command whose result is one JSON document in a folder.

    Attributes:
        out_dir: The folder the command wrote.
        document: The document, typed.
        warnings: Things a user must hear about.
    """

    out_dir: Path
    document: Any
    warnings: list[str] = field(default_factory=list)
    _document: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def status(self) -> str:
        """``"completed"``, or ``"interrupted"`` when Ctrl-C stopped it early."""
        return self.document.status

    def to_dict(self) -> dict[str, Any]:
        """The document as a plain dict (a copy, equal to the file on disk)."""
        return _json_copy(self._document)

    def to_json(self, indent: int | None = 2) -> str:
        """The document as JSON text."""
        return json.dumps(self._document, indent=indent, allow_nan=False)


@dataclass
class BenchResult(DocumentResult):
    """A finished benchmark (``bigbench bench``).

    Attributes:
        out_dir: The bench directory (bench.json, bench.csv).
        document: bench.json as the typed :class:`~bigbench.records.BenchDocument`.
        warnings: Things a user must hear about.
    """

    document: BenchDocument

    @property
    def points(self) -> list[BenchPoint]:
        """Every measured point, typed (``point.samples_per_s.median``, ``point.energy``...)."""
        return list(self.document.points)

    @property
    def failed(self) -> list[str]:
        """Ids of the points that failed, and ``scaling/n<N>`` of each world size whose job
        failed (``bigbench bench`` exits 1 when there is one)."""
        from bigbench.benchmark.scaling import failed_sizes

        return [p.id for p in self.document.points if p.status == "failed"] + \
            failed_sizes(self.document)

    def points_frame(self) -> pandas.DataFrame:
        """One row per point with the columns of bench.csv (None where not measured).

        Raises:
            ImportError: pandas is not installed (``pip install pandas``).
        """
        try:
            import pandas
        except ImportError:
            raise ImportError("BenchResult.points_frame() needs pandas, which is not "
                              "installed: pip install pandas (or use to_dict()['points'], "
                              "or bench.csv)") from None
        from bigbench.benchmark.output import CSV_COLUMNS, csv_row

        return pandas.DataFrame([csv_row(p) for p in self.document.points],
                                columns=CSV_COLUMNS)


@dataclass
class OptimizeResult(DocumentResult):
    """A finished optimize run (``bigbench optimize``).

    Attributes:
        out_dir: Its folder (optimize.json, base/, variants/<name>/).
        document: optimize.json as the typed :class:`~bigbench.records.OptimizeDocument`;
            ``status`` may also be ``"failed"`` (training the base failed).
        warnings: Things a user must hear about.
    """

    document: OptimizeDocument

    @property
    def variants(self) -> dict[str, OptimizeVariant]:
        """Every variant by name (``base`` first)."""
        return {v.name: v for v in self.document.variants}

    @property
    def failed(self) -> list[str]:
        """Names of the variants that failed (``bigbench optimize`` exits 1 when there is one)."""
        return [v.name for v in self.document.variants if v.status == "failed"]

    @property
    def front(self) -> list[str]:
        """Names of the variants on the Pareto front (none dominates them)."""
        return list(self.document.pareto.front) if self.document.pareto else []


@dataclass
class SweepResult(DocumentResult):
    """A finished sweep (``bigbench sweep``).

    Attributes:
        out_dir: Its folder (sweep.json, trials/<id>/ run directories).
        document: sweep.json as the typed :class:`~bigbench.records.SweepDocument`.
        warnings: Things a user must hear about.
    """

    document: SweepDocument

    @property
    def failed(self) -> list[str]:
        """Ids of the trials that failed (``bigbench sweep`` exits 1 when there is one)."""
        return [t.id for t in self.document.trials if t.status == "failed"]
