"""Settings from a YAML `--config` file and `DISTILL_AUDIT_*` environment variables.

Precedence, highest first: the command line; `DISTILL_AUDIT_<COMMAND>_<OPTION>`;
`DISTILL_AUDIT_<OPTION>`; the YAML file (a `<command>:` section over top-level keys);
the option's default. Both sources become click's `default_map`, so every option of
every command is settable without per-option code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from distill_audit.errors import UsageError

ENV_PREFIX = "DISTILL_AUDIT"


def find_config_arg(argv: list[str], command: str | None = None, environ: dict[str, str] | None = None) -> Path | None:
    """The config file: `--config` anywhere in argv, else `DISTILL_AUDIT_<COMMAND>_CONFIG`,
    else `DISTILL_AUDIT_CONFIG` (it must be known before parsing, to fill the defaults)."""
    return find_config(argv, command, environ)[0]


def find_config(
    argv: list[str], command: str | None = None, environ: dict[str, str] | None = None
) -> tuple[Path | None, str | None]:
    """(config path, the environment variable it came from or None for --config)."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return Path(argv[i + 1]), None
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1]), None
    environ = os.environ if environ is None else environ
    names = ([f"{ENV_PREFIX}_{command.upper()}_CONFIG"] if command else []) + [f"{ENV_PREFIX}_CONFIG"]
    for name in names:
        value = environ.get(name)
        if value:
            return Path(value), name
    return None, None


def load_yaml_config(path: Path, variable: str | None = None) -> dict[str, Any]:
    if not path.is_file():
        where = f" (from {variable})" if variable else ""
        what = "is a folder, not a config file" if path.is_dir() else "config file not found"
        raise UsageError(f"{path}: {what}{where}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: config is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: config must be a mapping of option: value")
    return data


def _normalize_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_").lower()


def build_default_map(
    command_names: list[str],
    command_params: dict[str, set[str]],
    config: dict[str, Any] | None,
    environ: dict[str, str] | None = None,
    multiple: dict[str, set[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Merge YAML and global env vars into click's per-command default_map.

    `multiple` names each command's repeatable options: their value is a list (an
    environment value is split on whitespace, as click does for its own variables).
    """
    environ = dict(os.environ if environ is None else environ)
    config = config or {}
    default_map: dict[str, dict[str, Any]] = {}
    sections = {_normalize_key(k): v for k, v in config.items() if isinstance(v, dict)}
    top = {_normalize_key(k): v for k, v in config.items() if not isinstance(v, dict)}
    for name in command_names:
        params = command_params.get(name, set())
        values: dict[str, Any] = {}
        for key, value in top.items():
            if key in params:
                values[key] = value
        for key, value in (sections.get(_normalize_key(name)) or {}).items():
            k = _normalize_key(key)
            if k not in params:
                raise UsageError(f"config: '{name}' has no option '{key}'")
            values[k] = value
        for param in params:
            env_value = environ.get(f"{ENV_PREFIX}_{param.upper()}")
            if env_value is not None:
                values[param] = env_value
        for param in (multiple or {}).get(name, set()):
            if param in values and not isinstance(values[param], (list, tuple)):
                value = values[param]
                values[param] = value.split() if isinstance(value, str) else [value]
        if values:
            default_map[name] = values
    unknown = [k for k in top if not any(k in p for p in command_params.values())]
    if unknown:
        raise UsageError(f"config: unknown option(s) {', '.join(sorted(unknown))}")
    return default_map
