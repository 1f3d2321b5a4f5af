"""Every command has a docs page (docs/<command>.md) that names every option its --help shows."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
# Options every command takes, documented once in the user guide rather than on each page.
COMMON_OPTIONS = ("--config", "--quiet")


def _commands():
    from distill_audit.cli.main import get_click_command

    return sorted(get_click_command().commands.items())


def _long_options(command) -> list[str]:
    """The command's long options (a command group's: every subcommand's)."""
    names = []
    for sub in getattr(command, "commands", {}).values():
        names.extend(_long_options(sub))
    for param in command.params:
        if getattr(param, "hidden", False) or param.param_type_name != "option":
            continue
        longs = [o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")]
        names.extend(longs[:1] + [o for o in param.secondary_opts if o.startswith("--")])
    return [n for n in dict.fromkeys(names) if n != "--help"]


@pytest.mark.parametrize("name, command", _commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_command_has_a_docs_page_naming_every_option(name, command):
    page = DOCS / f"{name}.md"
    assert page.is_file(), f"docs/{name}.md is missing: every command has a page"
    text = page.read_text(encoding="utf-8")
    assert f"distill-audit {name}" in text, f"docs/{name}.md never shows the command line"
    missing = [opt for opt in _long_options(command) if opt not in text and opt not in COMMON_OPTIONS]
    assert not missing, f"docs/{name}.md does not mention {', '.join(missing)} (shown by '{name} --help')"


def test_common_options_are_documented_in_the_user_guide():
    guide = (DOCS / "user-guide.md").read_text(encoding="utf-8")
    for opt in COMMON_OPTIONS:
        assert opt in guide


def test_every_docs_page_option_exists():
    """The reverse direction for our own pages: no documented flag that the command lacks."""
    import re

    for name, command in _commands():
        page = DOCS / f"{name}.md"
        if not page.is_file():
            continue
        known = set(_long_options(command)) | {"--help", "--config", "--version"}
        table_flags = re.findall(r"^\|\s*`(--[a-z0-9-]+)", page.read_text(encoding="utf-8"), flags=re.M)
        unknown = sorted(set(table_flags) - known)
        assert not unknown, f"docs/{name}.md documents options '{name}' does not have: {', '.join(unknown)}"
