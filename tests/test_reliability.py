"""Reliability: every bad input is one clear line with its documented exit code.

A test per defect of the reliability audit, then a corpus of bad inputs (made here,
under tmp_path) run against every command that reads them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = {"prompt": "Continue: 1, 2", "completion": "3, 4, 5"}
FAST_SCAN = ("--student", "tiny-random", "--skip-signature", "--skip-canary", "--skip-lineage", "-q")
REPO = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for row in rows:
            f.write(row if isinstance(row, bytes) else (json.dumps(row) + "\n").encode())
    return path


def one_line(r, code: int, *needles: str) -> None:
    text = r.stderr + r.stdout
    assert r.exit_code == code, (r.exit_code, r.stderr[-2000:])
    assert "Traceback" not in text, text[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, r.stderr[-2000:]
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr[-2000:])


@pytest.fixture(scope="module")
def report_json(tmp_path_factory) -> Path:
    """A real report.json from a fast scan (static checks only)."""
    from distill_audit.cli.main import run

    base = tmp_path_factory.mktemp("rep")
    data = write_jsonl(base / "d.jsonl", [dict(GOOD, completion=f"{i}, {i + 1}, {i + 2}") for i in range(20)])
    code = run(["scan", str(data), *FAST_SCAN, "--out", str(base / "out"), "--fail-on", "never"])
    assert code == 0
    return base / "out" / "report.json"


# ---------------------------------------------------------------- D1: crashes never exit 1


def test_unexpected_error_exits_2_with_a_log(cli, monkeypatch, tmp_path):
    import distill_audit.cli.cmd_lineage as cmd

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def boom(*a, **k):
        raise TypeError("a bug")

    monkeypatch.setattr(cmd, "check_lineage", boom)
    r = cli("lineage", "gpt-4.1", "gpt-4o")
    one_line(r, 2, "internal error: TypeError: a bug", "full traceback in")
    log = Path(r.stderr.split("full traceback in ")[1].split(")")[0].strip())
    assert log.is_file() and "TypeError: a bug" in log.read_text() and str(tmp_path) in str(log)


def test_corrupted_parquet_body_is_a_data_error(cli, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(
        pa.table({"prompt": ["p"] * 5000, "completion": [f"c{i}" * 50 for i in range(5000)]}),
        path,
        row_group_size=1000,
        compression="none",
    )
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 4000] = os.urandom(4000)
    path.write_bytes(bytes(raw))
    r = cli("inspect", path)
    assert r.exit_code in (3, 4), r.stderr
    assert "Traceback" not in r.stderr and "c.parquet" in r.stderr


def test_scan_out_is_a_file(cli, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 5)
    (tmp_path / "f").write_text("x")
    one_line(cli("scan", data, *FAST_SCAN, "--out", tmp_path / "f"), 4, "--out", "not a folder")


def test_out_under_proc_is_a_user_error(cli, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 5)
    r = cli("inspect", data, "--out", "/proc/distill-audit-x/out.txt")
    assert r.exit_code == 4 and "Traceback" not in r.stderr and "/proc" in r.stderr


def test_out_folder_from_env_names_it(cli, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 5)
    monkeypatch.setenv("DISTILL_AUDIT_OUT", str(tmp_path))
    one_line(cli("inspect", data), 4, "is a folder")


def test_unreadable_file_is_a_user_error(cli, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])
    path.chmod(0)
    one_line(cli("inspect", path), 4, "d.jsonl", "permission denied")


def test_binary_config_and_prompts(cli, tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe\x00bad")
    data = write_jsonl(tmp_path / "d.jsonl", [GOOD])
    one_line(cli("inspect", data, "--config", tmp_path / "c.yaml"), 4, "c.yaml", "not UTF-8")
    (tmp_path / "p.txt").write_bytes(b"\xff\xfe\x00bad")
    one_line(
        cli("generate", "--teacher", "tiny-random", "--prompts", tmp_path / "p.txt", "--out", tmp_path / "o.jsonl"),
        4,
        "p.txt",
        "not UTF-8",
    )
    (tmp_path / "o.jsonl").write_bytes(b"\xff\xfe\x00bad")
    one_line(cli("generate", "--teacher", "tiny-random", "--out", tmp_path / "o.jsonl"), 4, "o.jsonl", "--overwrite")


def test_symlink_loop_is_named(cli, tmp_path):
    loop = tmp_path / "loop.jsonl"
    os.symlink(loop, loop)
    r = cli("inspect", loop)
    assert r.exit_code == 4 and "Traceback" not in r.stderr and "loop.jsonl" in r.stderr


# ---------------------------------------------------------------- D2: plain-text errors


def test_brackets_in_paths_and_data_print_intact(cli, tmp_path):
    path = tmp_path / "a[" / "b].jsonl"
    write_jsonl(path, [{"prompt": "x"}])
    one_line(cli("inspect", path), 3, "a[/b].jsonl", "[prompt]")
    bold = write_jsonl(tmp_path / "data[bold].jsonl", [{"prompt": "x", "completion": ""}])
    one_line(cli("inspect", bold), 4, "data[bold].jsonl:1:")
    role = write_jsonl(
        tmp_path / "r.jsonl", [{"messages": [{"role": "[/b]", "content": "a"}, {"role": "assistant", "content": "b"}]}]
    )
    one_line(cli("inspect", role), 4, "'[/b]'")


# ---------------------------------------------------------------- D3: mixed schemas


def test_mixed_schema_blames_the_odd_row(cli, tmp_path):
    rows = (
        [GOOD] * 3
        + [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
        + [GOOD] * 3
    )
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    one_line(cli("inspect", path), 4, "m.jsonl:4:", "mixed schemas", "messages")
    r = cli("inspect", path, "--skip-bad-rows", "--format", "json")
    assert r.exit_code == 0, r.stderr
    ds = json.loads(r.stdout)["dataset"]
    assert ds["n_loaded"] == 6 and ds["skipped_by_reason"] == {"different schema": 1}


def test_missing_key_in_a_block_is_not_every_key(cli, tmp_path):
    """pyarrow fills absent keys with null; detection uses the first row's own keys."""
    rows = [{"text": "hello there"}] + [{"text": "more", "completion": None}] * 2
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    r = cli("inspect", path, "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dataset"]["schema"] == "text"


# ---------------------------------------------------------------- D4: deep nesting


def test_deep_nesting_in_a_subprocess(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + '{"prompt": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    p = subprocess.run(
        [sys.executable, "-m", "distill_audit", "inspect", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 4, (p.returncode, p.stderr[-1000:])
    assert "deep.jsonl:2:" in p.stderr and "nested too deep" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("depth", [101, 1000, 5000])
def test_deep_nesting_is_a_bad_row(cli, tmp_path, depth):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [GOOD, ('{"prompt": "a", "completion": "b", "x": ' + "[" * depth + "]" * depth + "}\n").encode()],
    )
    one_line(cli("inspect", path), 4, "d.jsonl:2:", "nested too deep")


def test_nesting_within_the_limit_and_brackets_in_strings_are_fine(cli, tmp_path):
    rows = [dict(GOOD, x=json.loads("[" * 50 + "]" * 50)), dict(GOOD, completion="[" * 500)] * 3
    r = cli("inspect", write_jsonl(tmp_path / "ok.jsonl", rows), "--format", "json")
    assert r.exit_code == 0, r.stderr


def test_deep_json_array_file(cli, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 3000 + "]" * 3000)
    one_line(cli("inspect", path), 4, "deep.json", "nested deeper")


# ---------------------------------------------------------------- D5: failed stages and flags


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--device", "tpu9"], "--device"),
        (["--lr", "-1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--fail-on", "severe"], "--fail-on"),
        (["--max-bad-rows", "lots"], "--max-bad-rows"),
        (["--max-bad-rows", "150%"], "--max-bad-rows"),
        (["--max-row-mb", "nan"], "--max-row-mb"),
    ],
)
def test_flags_validated_before_any_stage_also_warm(cli, tmp_path, flags, needle):
    data = write_jsonl(tmp_path / "d.jsonl", [dict(GOOD, completion=f"{i}, 2") for i in range(10)])
    assert cli("scan", data, *FAST_SCAN, "--out", tmp_path / "warm").exit_code == 0  # warm cache
    one_line(cli("scan", data, *FAST_SCAN, "--out", tmp_path / "o", *flags), 4, needle)
    assert not (tmp_path / "o").exists()


def test_failed_reference_fails_the_scan(cli, tmp_path, monkeypatch):
    import distill_audit.lm.sampler as sampler

    def broken(*a, **k):
        raise RuntimeError("decoder broke")

    monkeypatch.setattr(sampler, "sample_completions", broken)
    data = write_jsonl(tmp_path / "d.jsonl", [dict(GOOD, completion=f"{i}, 2") for i in range(10)])
    r = cli(
        "scan",
        data,
        "--student",
        "tiny-random",
        "--skip-lineage",
        "--signature-rows",
        "4",
        "--canary-rows",
        "4",
        "--no-cache",
        "--out",
        tmp_path / "o",
        "-q",
    )
    assert r.exit_code == 2, r.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    for stage in ("signature", "canary"):
        assert report["stages"][stage]["status"] == "failed"
        assert "reference stage failed" in report["stages"][stage]["reason"]


def test_generate_checks_n_before_loading(cli, tmp_path):
    one_line(cli("generate", "--teacher", "tiny-random", "--n", "0", "--out", tmp_path / "o.jsonl"), 4, "--n")
    one_line(
        cli("generate", "--teacher", "tiny-random", "--device", "tpu9", "--out", tmp_path / "o.jsonl"), 4, "--device"
    )


# ---------------------------------------------------------------- D6: config variables


def test_command_config_variable_is_honoured(cli, tmp_path, monkeypatch, report_json):
    (tmp_path / "rc.yaml").write_text("format: junit\n")
    monkeypatch.setenv("DISTILL_AUDIT_REPORT_CONFIG", str(tmp_path / "rc.yaml"))
    r = cli("report", report_json)
    assert r.exit_code == 0 and r.stdout.lstrip().startswith("<?xml"), r.stdout[:200]
    monkeypatch.delenv("DISTILL_AUDIT_REPORT_CONFIG")
    monkeypatch.setenv("DISTILL_AUDIT_CONFIG", str(tmp_path / "rc.yaml"))
    assert cli("report", report_json).stdout.lstrip().startswith("<?xml")
    monkeypatch.setenv("DISTILL_AUDIT_REPORT_CONFIG", str(tmp_path / "missing.yaml"))
    one_line(cli("report", report_json), 4, "missing.yaml", "DISTILL_AUDIT_REPORT_CONFIG")


def test_scan_config_variable_sets_the_gate(cli, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "d.jsonl", [dict(GOOD, completion=f"{i}, 2") for i in range(10)])
    (tmp_path / "s.yaml").write_text("scan:\n  fail_on: none\n")
    via_flag = cli("scan", data, *FAST_SCAN, "--out", tmp_path / "a", "--config", tmp_path / "s.yaml").exit_code
    monkeypatch.setenv("DISTILL_AUDIT_SCAN_CONFIG", str(tmp_path / "s.yaml"))
    via_env = cli("scan", data, *FAST_SCAN, "--out", tmp_path / "b").exit_code
    assert via_flag == via_env == 1


def test_bad_env_value_names_the_variable(cli, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 3)
    monkeypatch.setenv("DISTILL_AUDIT_INSPECT_SEED", "abc")
    one_line(cli("inspect", data), 4, "DISTILL_AUDIT_INSPECT_SEED")
    monkeypatch.delenv("DISTILL_AUDIT_INSPECT_SEED")
    monkeypatch.setenv("DISTILL_AUDIT_SEED", "abc")
    one_line(cli("inspect", data), 4, "DISTILL_AUDIT_SEED")


def _env_cases():
    from distill_audit.cli.main import get_click_command

    command = get_click_command()
    for name, cmd in sorted(command.commands.items()):
        for param in cmd.params:
            if param.param_type_name == "option" and param.name not in ("config", "help"):
                yield name, param.name


@pytest.mark.parametrize("command,param", list(_env_cases()))
def test_every_option_has_working_env_variables(command, param):
    """DISTILL_AUDIT_<COMMAND>_<OPTION> and DISTILL_AUDIT_<OPTION>, one by one: click reads each."""
    from distill_audit.cli.main import click, get_click_command
    from distill_audit.config import build_default_map

    group = get_click_command()
    cmd = group.commands[command]
    opt = next(p for p in cmd.params if p.name == param)
    args = ["x" for p in cmd.params if p.param_type_name == "argument"]
    for other in cmd.params:
        if other.param_type_name == "option" and other.required and other.name != param:
            args += [other.opts[0], "x"]
    default = getattr(opt.default, "value", opt.default)
    if opt.is_flag:
        candidates = ["1"]
    else:
        candidates = ([str(default)] if default not in (None, False, "") else []) + [
            "3",
            "x",
            "messages",
            "4bit",
            "json",
        ]
    params = {n: {p.name for p in c.params if p.name} for n, c in group.commands.items()}
    multiple = {
        n: {p.name for p in c.params if p.name and getattr(p, "multiple", False)} for n, c in group.commands.items()
    }
    for variable in (f"DISTILL_AUDIT_{command.upper()}_{param.upper()}", f"DISTILL_AUDIT_{param.upper()}"):
        source = None
        for value in candidates:
            old = dict(os.environ)
            os.environ[variable] = value
            try:
                default_map = build_default_map(list(params), params, None, multiple=multiple)
                ctx = cmd.make_context(
                    command,
                    list(args),
                    default_map=default_map.get(command),
                    auto_envvar_prefix=f"DISTILL_AUDIT_{command.upper()}",
                )
                source = ctx.get_parameter_source(param).name
                break
            except click.exceptions.BadParameter:
                continue
            finally:
                os.environ.clear()
                os.environ.update(old)
        assert source in ("ENVIRONMENT", "DEFAULT_MAP"), (variable, source)


# ---------------------------------------------------------------- D7: one output set


def test_outputs_are_replaced_as_a_set(report_json, tmp_path, monkeypatch):
    import distill_audit.report.render as build

    report = json.loads(report_json.read_text())
    out = tmp_path / "out"
    build.write_run_outputs(report, out, ["json", "md", "parquet"], [{"index": 0, "line": 1}])
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    newer = json.loads(json.dumps(report))
    newer["seed"] = 99

    def broken(report, fmt):
        raise RuntimeError("render failed")

    monkeypatch.setattr(build, "render", broken)
    with pytest.raises(RuntimeError):
        build.write_run_outputs(newer, out, ["json", "md", "parquet"], [{"index": 0, "line": 2}])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # the old set, whole
    monkeypatch.undo()
    written = build.write_run_outputs(newer, out, ["json", "md"], None)
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
    assert json.loads(written["json"].read_text())["seed"] == 99
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_outputs_keep_other_files_in_the_folder(report_json, tmp_path):
    from distill_audit.report.render import write_run_outputs

    report = json.loads(report_json.read_text())
    (tmp_path / "mine.txt").write_text("keep")
    write_run_outputs(report, tmp_path, ["json", "md"], None)
    assert (tmp_path / "mine.txt").read_text() == "keep" and (tmp_path / "report.json").is_file()


# ---------------------------------------------------------------- D8: first run == later runs


def test_tiny_random_identity_is_the_same_on_an_empty_cache(tmp_path, monkeypatch):
    from distill_audit.models.resolve import resolve_model

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    first = resolve_model("tiny-random").identity()
    again = resolve_model("tiny-random").identity()
    assert "sha256" in first and first == again


# ---------------------------------------------------------------- D9: markdown escapes data


def test_markdown_escapes_data(report_json):
    from distill_audit.report.markdown import to_markdown

    report = json.loads(report_json.read_text())
    report["dataset"]["source"] = "x`<script>alert(1)</script>.jsonl"
    report["models"]["teacher"] = {
        "ref": "<script>t()</script>",
        "origin": "provenance <b>",
        "kind": None,
        "name": "<script>t()</script>",
        "identity": None,
    }
    report["verdict"]["explanation"] = "trait <img src=x onerror=alert(1)>"
    text = to_markdown(report)
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;t()&lt;/script&gt;" in text
    assert "``x`<script>alert(1)</script>.jsonl``" in text  # a code span its backtick cannot close


# ---------------------------------------------------------------- smaller ones


def test_sigterm_is_handled_like_ctrl_c(cli, monkeypatch):
    import distill_audit.cli.cmd_lineage as cmd

    def term(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(cmd, "check_lineage", term)
    one_line(cli("lineage", "gpt-4.1", "gpt-4o"), 2, "interrupted")


@pytest.mark.parametrize(
    "ref,needles",
    [
        ("llama-3-8b", ["meta-llama/Meta-Llama-3-8B", "huggingface-cli download meta-llama/Meta-Llama-3-8B"]),
        ("qwen2.5-7b", ["Qwen/Qwen2.5-7B", "huggingface-cli download Qwen/Qwen2.5-7B"]),
        ("smollm2-135", ["did you mean smollm2-135m"]),
        ("org/not-cached-model", ["huggingface-cli download org/not-cached-model"]),
    ],
)
def test_model_refs_that_do_not_resolve(cli, tmp_path, ref, needles):
    data = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 3)
    one_line(cli("scan", data, "--student", ref, "--skip-lineage", "--out", tmp_path / "o"), 4, *needles)
    one_line(cli("generate", "--teacher", ref, "--out", tmp_path / "g.jsonl"), 4, *needles)


def test_hub_aliases_are_registry_names():
    from distill_audit.models.registry import load_registry
    from distill_audit.models.resolve import HF_ID, hub_aliases

    registry = load_registry()
    assert {"llama-3-8b", "llama-3.1-8b", "llama-3.2-1b", "qwen2.5-7b", "gemma-2-9b", "mistral-7b"} <= set(
        hub_aliases()
    )
    for alias, hub_id in hub_aliases().items():
        entry = registry.lookup(hub_id)
        assert entry is not None and entry.exact and entry.open_weights, (alias, hub_id)
        assert registry.lookup(alias) is not None and HF_ID.match(hub_id), alias


def test_scan_requires_student(cli, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [GOOD] * 3)
    one_line(cli("scan", data, "--out", tmp_path / "o"), 4, "--student")


def test_fail_on_defaults_to_high_and_never_opts_out(cli, tmp_path, monkeypatch):
    import distill_audit.scan.pipeline as pipeline

    real = pipeline.judge

    def high(*a, **k):
        v = real(*a, **k)
        v.level = "high"
        return v

    monkeypatch.setattr(pipeline, "judge", high)
    data = write_jsonl(tmp_path / "d.jsonl", [dict(GOOD, completion=f"{i}, 2") for i in range(10)])
    r = cli("scan", data, *FAST_SCAN, "--out", tmp_path / "a")
    assert r.exit_code == 1, r.stderr
    assert cli("scan", data, *FAST_SCAN, "--out", tmp_path / "b", "--fail-on", "never").exit_code == 0


def test_device_auto_picks_an_available_device():
    from distill_audit.devices import auto_device, resolve_device

    assert resolve_device("auto") == auto_device() and resolve_device("cpu") == "cpu"


# ---------------------------------------------------------------- issue 15: bad rows are findings


def test_bad_rows_under_the_limit_are_skipped_and_reported(cli, tmp_path):
    rows = [dict(GOOD, completion=f"{i}, 2") for i in range(199)] + [{"prompt": "x", "completion": ""}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    r = cli("inspect", path, "--format", "json")
    assert r.exit_code == 0, r.stderr
    ds = json.loads(r.stdout)["dataset"]
    assert ds["n_skipped"] == 1 and ds["skipped_by_reason"] == {"empty completion": 1}
    assert "skipped 1 of 200 rows" in r.stderr and "line 200" in r.stderr
    one_line(cli("inspect", path, "--max-bad-rows", "0"), 4, "d.jsonl:200:", "empty completion")


def test_bad_rows_past_the_limit_name_the_first_lines(cli, tmp_path):
    rows = [GOOD] * 50 + [{"prompt": "x", "completion": ""}] * 3 + [GOOD] * 47
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    one_line(cli("inspect", path), 4, "d.jsonl:51:", "3 bad rows", "lines 51, 52, 53", "1% of 100 rows = 1")
    assert cli("inspect", path, "--max-bad-rows", "3").exit_code == 0
    assert cli("inspect", path, "--max-bad-rows", "5%").exit_code == 0
    one_line(cli("inspect", path, "--max-bad-rows", "2"), 4, "more than 2")


def test_near_constant_lengths_are_not_outliers():
    import numpy as np

    from distill_audit.checks.lengths import length_outliers

    rng = np.random.default_rng(0)
    chars = np.concatenate([np.full(5000, 40), rng.integers(36, 45, 454), [400]])
    flagged = length_outliers(chars)
    assert flagged.sum() == 1 and flagged[-1]
