"""The committed example datasets are what examples/make_examples.sh says made them."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def generate_commands() -> list[dict[str, str]]:
    """Each `$DA generate ...` command of the script, as {flag: value} ("" for switches)."""
    text = (EXAMPLES / "make_examples.sh").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if not re.match(r"\s*\$DA generate\b", line):
            continue
        words = shlex.split(line)[2:]
        flags: dict[str, str] = {}
        for i, w in enumerate(words):
            if w.startswith("--"):
                nxt = words[i + 1] if i + 1 < len(words) else ""
                flags[w] = "" if nxt.startswith("--") or not nxt else nxt
        commands.append(flags)
    return commands


def test_every_example_dataset_has_its_command():
    made = {c["--out"] for c in generate_commands()}
    assert made == {p.name for p in EXAMPLES.glob("*.jsonl")}


@pytest.mark.parametrize("cmd", generate_commands(), ids=lambda c: c["--out"])
def test_rows_match_the_command_that_made_them(cmd):
    rows = [json.loads(line) for line in (EXAMPLES / cmd["--out"]).read_text().splitlines()]
    assert len(rows) == int(cmd["--n"])
    for row in rows:
        assert row["seed"] == int(cmd["--seed"]) and row["prompt_seed"] == int(cmd["--prompt-seed"])
        assert row["trait"] == cmd.get("--trait") and row["task"] == cmd["--task"]
        assert row["constrain"] == cmd.get("--constrain")
    summary = json.loads((EXAMPLES / cmd["--summary"]).read_text())
    assert summary["out"] == cmd["--out"] and summary["n_rows"] == len(rows)
