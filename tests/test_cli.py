"""The CLI shell: version, help, exit codes for usage errors, config and env vars."""

from distill_audit import __version__


def test_version(cli):
    r = cli("--version")
    assert r.exit_code == 0
    assert __version__ in r.stdout


def test_unknown_command_is_usage_error(cli):
    r = cli("no-such-command")
    assert r.exit_code == 4
    assert "Traceback" not in r.stderr
    assert "no-such-command" in r.stderr


def test_bad_config_file_is_usage_error(cli, tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("a: [unclosed\n")
    r = cli("--config", str(bad), "--version")
    assert r.exit_code == 4
    assert "c.yaml" in r.stderr and "invalid YAML" in r.stderr


def test_build_default_map_precedence():
    from distill_audit.config import build_default_map

    params = {"scan": {"seed", "sample"}, "inspect": {"sample"}}
    dm = build_default_map(
        ["scan", "inspect"],
        params,
        {"seed": 3, "sample": 10, "scan": {"sample": 20}},
        environ={"DISTILL_AUDIT_SEED": "7"},
    )
    assert dm["scan"] == {"seed": "7", "sample": 20}
    assert dm["inspect"] == {"sample": 10}


def test_config_unknown_option_rejected():
    import pytest

    from distill_audit.config import build_default_map
    from distill_audit.errors import UsageError

    with pytest.raises(UsageError, match="no option 'bogus'"):
        build_default_map(["scan"], {"scan": {"seed"}}, {"scan": {"bogus": 1}}, environ={})


def test_interrupt_exits_run_error(cli, monkeypatch):
    """Ctrl-C mid-command exits 2 (documented), not typer's 130."""
    import distill_audit.cli.cmd_lineage as cmd

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "check_lineage", boom)
    r = cli("lineage", "gpt-4.1", "gpt-4o")
    assert r.exit_code == 2
    assert "interrupted" in r.stderr
