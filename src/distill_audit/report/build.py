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
from distill_audit.atomic import atomic_path, write_text
from distill_audit.errors import DataError

SCHEMA_VERSION = "2.0"
READABLE_VERSIONS = ("1.0", SCHEMA_VERSION)  # `report` and `compare` still read the previous version
LIBRARIES = ("torch", "transformers", "datasets", "peft", "accelerate", "numpy", "scipy", "scikit-learn", "pyarrow")
FORMATS = ("json", "md", "html", "junit", "parquet")
SUFFIX = {"json": "report.json", "md": "report.md", "html": "report.html", "junit": "junit.xml", "parquet": "samples.parquet"}


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
        raise DataError(f"{p}: field schema_version: expected one of {', '.join(READABLE_VERSIONS)}, got {got!r} (not a distill-audit scan report?)")
    validate(report, str(p))
    return report


def write_samples_parquet(rows: list[dict[str, Any]], target: str | Path) -> Path:
    """Per-sample scores (signature, static flags) as one Parquet table, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Columns are the union of every row's keys (a stage may score only some rows).
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = (pa.table({c: [r.get(c) for r in rows] for c in columns}) if rows
             else pa.table({"index": pa.array([], pa.int64())}))
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return Path(target)


def write_outputs(report: dict[str, Any], out_dir: str | Path, formats: list[str]) -> dict[str, Path]:
    """Validate, then write report.json and each rendered format atomically."""
    from distill_audit.report.render import render

    validate(report)
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for fmt in formats:
        if fmt == "parquet":
            continue  # written by the pipeline, which holds the per-sample rows
        text = dumps(report) if fmt == "json" else render(report, fmt)
        written[fmt] = write_text(out / SUFFIX[fmt], text)
    return written


def write_run_outputs(
    report: dict[str, Any], out_dir: str | Path, formats: list[str], sample_rows: list[dict[str, Any]] | None = None
) -> dict[str, Path]:
    """Write a run's whole output set so the folder holds either the old set or the new one.

    Everything is rendered into a temp folder beside `out_dir` first (a failure there
    leaves the old set untouched). A folder holding only distill-audit outputs is then
    replaced by the new one with two renames; a folder that also holds other files keeps
    them, and the new files are renamed in, report.json last. Returns the final paths.
    """
    import os
    import shutil
    import tempfile

    validate(report)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder (--out names the folder for the reports)")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_output_temps(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    names: dict[str, str] = {}
    try:
        for fmt in formats:
            if fmt == "parquet":
                if sample_rows is not None:
                    write_samples_parquet(sample_rows, tmp / SUFFIX["parquet"])
                    names["parquet"] = SUFFIX["parquet"]
                continue
            text = dumps(report) if fmt == "json" else _render(report, fmt)
            (tmp / SUFFIX[fmt]).write_text(text, encoding="utf-8")
            names[fmt] = SUFFIX[fmt]
        mode = 0o777 & ~_umask()
        os.chmod(tmp, mode)
        for name in names.values():
            os.chmod(tmp / name, 0o666 & ~_umask())
        ours = set(SUFFIX.values())
        if not out.exists():
            os.rename(tmp, out)
        elif all(p.name in ours or p.name.startswith(".") for p in out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
            os.rmdir(old)
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            for stale in ours - set(names.values()):  # an older set's file the new set does not have
                (out / stale).unlink(missing_ok=True)
            for name in sorted(names.values(), key=lambda n: n == SUFFIX["json"]):
                os.replace(tmp / name, out / name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {fmt: out / name for fmt, name in names.items()}


def _render(report: dict[str, Any], fmt: str) -> str:
    from distill_audit.report.render import render

    return render(report, fmt)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_output_temps(out: Path, max_age_s: float = 3600.0) -> None:
    """Temp folders that a killed writer left beside `out` (older than any live write)."""
    import shutil
    import time

    for old in out.parent.glob(f".{out.name}.*.tmp"):
        try:
            if time.time() - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


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
