"""The canonical JSON report: assembly helpers, schema validation and atomic writes.

Everything a reviewer sees is rendered from this one dict (Markdown, HTML, JUnit),
so a report re-renders without models and two reports can be compared.
"""

from __future__ import annotations

import json
import platform
from functools import lru_cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from distill_audit import __version__
from distill_audit.atomic import atomic_path
from distill_audit.errors import DataError
from distill_audit.report.formats import FORMATS, SUFFIX  # noqa: F401  (re-exported)

SCHEMA_VERSION = "2.0"
READABLE_VERSIONS = ("1.0", SCHEMA_VERSION)  # `report` and `compare` still read the previous version
LIBRARIES = ("torch", "transformers", "datasets", "peft", "accelerate", "numpy", "scipy", "scikit-learn", "pyarrow")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("distill_audit.report").joinpath("schema.json").read_text(encoding="utf-8"))


def environment(device: str = "cpu") -> dict[str, Any]:
    """Interpreter, platform and library versions: what a re-run must match."""
    libs: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = None
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = None
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "libraries": libs,
        "device": device,
        "threads": threads,
    }


def tool() -> dict[str, str]:
    return {"name": "distill-audit", "version": __version__}


def validate(report: dict[str, Any], source: str = "report") -> None:
    """Raise DataError naming the first schema violation (field path and message)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise DataError(f"{source}: field {where}: {err.message}")


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n"


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report written by `scan` (a clear error otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: report file not found")
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(report, dict) or report.get("schema_version") not in READABLE_VERSIONS:
        got = report.get("schema_version") if isinstance(report, dict) else None
        raise DataError(
            f"{p}: field schema_version: expected one of {', '.join(READABLE_VERSIONS)}, got {got!r} (not a distill-audit scan report?)"
        )
    validate(report, str(p))
    if "rows" not in report:  # written before the per-row section: read it from the table beside the report
        from distill_audit.report.rows import rows_from_parquet

        report["rows"] = rows_from_parquet(report, p.parent / SUFFIX["parquet"])
    return report


def write_samples_parquet(rows: list[dict[str, Any]], target: str | Path) -> Path:
    """Per-sample scores (signature, static flags) as one Parquet table, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Columns are the union of every row's keys (a stage may score only some rows).
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = (
        pa.table({c: [r.get(c) for r in rows] for c in columns})
        if rows
        else pa.table({"index": pa.array([], pa.int64())})
    )
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return Path(target)


def build_report(
    *,
    config: dict[str, Any],
    seed: int,
    seeds: dict[str, int],
    dataset: dict[str, Any],
    reference: dict[str, Any] | None,
    student: dict[str, Any],
    teacher: dict[str, Any] | None,
    stages: dict[str, dict[str, Any]],
    verdict: dict[str, Any],
    gate: dict[str, Any],
    artifacts: dict[str, Any],
    run: dict[str, Any],
    device: str = "cpu",
) -> dict[str, Any]:
    """The canonical report dict, in the schema's key order."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": tool(),
        "command": "scan",
        "config": config,
        "seed": seed,
        "seeds": seeds,
        "environment": environment(device),
        "dataset": dataset,
        "reference": reference,
        "models": {"student": student, "teacher": teacher},
        "stages": stages,
        "verdict": verdict,
        "gate": gate,
        "artifacts": artifacts,
        "run": run,
    }
