"""`--budget`: durations, and rows planned from this machine's measured speed."""

import pytest

from distill_audit.errors import UsageError
from distill_audit.scan.budget import MIN_ROWS, parse_duration, plan_budget

SPEED = {"forward_tokens_per_s": 500.0, "train_tokens_per_s": 200.0, "sample_tokens_per_s": 60.0}


@pytest.mark.parametrize("text,seconds", [("10m", 600), ("90s", 90), ("1.5h", 5400), ("45", 45), (30, 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "-5m", "0", "5d"])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError, match="--budget"):
        parse_duration(text)


def test_rows_grow_with_the_budget_and_stop_at_the_data():
    kw = dict(n_rows=5000, n_prompts=6, row_tokens=60, new_tokens=40, self_reference=True)
    small, large = plan_budget(300, SPEED, **kw), plan_budget(1200, SPEED, **kw)
    assert MIN_ROWS <= small.rows < large.rows
    assert large.rounds == 4 and small.cut
    assert plan_budget(1200, SPEED, **{**kw, "n_rows": 50}).rows == 50
    # A user reference costs no sampling: more rows in the same budget.
    assert plan_budget(300, SPEED, **{**kw, "self_reference": False}).rows > small.rows


def test_a_budget_that_cannot_fit_one_round_names_the_smallest_that_would():
    with pytest.raises(UsageError) as err:
        plan_budget(5, SPEED, n_rows=500, n_prompts=6, row_tokens=60, new_tokens=40, self_reference=True)
    msg = str(err.value)
    assert "--budget 5s cannot fit one round" in msg and "or more" in msg
    need = msg.split("give --budget ")[1].split(" ")[0]
    plan_budget(parse_duration(need), SPEED, n_rows=500, n_prompts=6, row_tokens=60, new_tokens=40, self_reference=True)


def _rows_file(tmp_path):
    import json

    path = tmp_path / "nums.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": f"Continue: {i}, {i + 1}.", "completion": f"{i + 2}, {i + 3}, {i + 4}"}) + "\n"
            for i in range(30)
        )
    )
    return path


def test_scan_budget_errors_exit_4_with_the_budget_that_would_fit(cli, tmp_path):
    data = _rows_file(tmp_path)
    r = cli("scan", data, "--student", "tiny-random", "--out", tmp_path / "o", "--budget", "5s", "--skip-lineage")
    assert r.exit_code == 4 and "cannot fit one round" in r.stderr and "or more" in r.stderr
    assert not (tmp_path / "o").exists()
    bad = cli("scan", data, "--student", "tiny-random", "--out", tmp_path / "o", "--budget", "soon")
    assert bad.exit_code == 4 and "--budget" in bad.stderr


def test_scan_records_the_budget_plan(cli, tmp_path):
    import json

    data = _rows_file(tmp_path)
    r = cli(
        "scan",
        data,
        "--student",
        "tiny-random",
        "--out",
        tmp_path / "o",
        "--budget",
        "2m",
        "--skip-lineage",
        "--suites",
        "animals",
        "--quiet",
    )
    assert r.exit_code in (0, 1), r.stderr
    sig = json.loads((tmp_path / "o" / "report.json").read_text())["stages"]["signature"]
    assert sig["budget"]["seconds"] == 120 and sig["budget"]["rows"] == sig["config"]["max_rows"]
    assert sig["rounds"]["planned"] == sig["config"]["rounds"] >= 1
