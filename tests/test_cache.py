"""The stage cache: keys change with every input, hits skip the work, failures are not kept."""

from distill_audit.scan.cache import StageCache, default_root, stage_key


def _key(**over):
    args = {"models": {"student": "a"}, "data": {"fingerprint": "f"}, "config": {"n": 1}, "seed": 0}
    args.update(over)
    return stage_key("signature", **args)


def test_key_depends_on_every_input():
    base = _key()
    assert base == _key()
    for over in ({"models": {"student": "b"}}, {"data": {"fingerprint": "g"}}, {"config": {"n": 2}}, {"seed": 1}):
        assert _key(**over) != base
    assert stage_key("canary", models={"student": "a"}, data={"fingerprint": "f"}, config={"n": 1}, seed=0) != base


def test_hit_skips_compute_and_failures_are_not_cached(tmp_path):
    cache = StageCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"status": "ok", "x": 1}

    assert cache.run("k1", compute) == ({"status": "ok", "x": 1}, "miss")
    assert cache.run("k1", compute) == ({"status": "ok", "x": 1}, "hit")
    assert len(calls) == 1
    failed = lambda: {"status": "failed"}  # noqa: E731
    ok = lambda v: v["status"] != "failed"  # noqa: E731
    assert cache.run("k2", failed, cacheable=ok)[1] == "miss"
    assert cache.run("k2", failed, cacheable=ok)[1] == "miss"
    assert StageCache(tmp_path, enabled=False).run("k1", compute)[1] == "off"
    assert len(calls) == 2


def test_default_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILL_AUDIT_STAGE_CACHE", str(tmp_path / "s"))
    assert default_root() == tmp_path / "s"
    monkeypatch.delenv("DISTILL_AUDIT_STAGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_root() == tmp_path / "x" / "distill-audit" / "stages"


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = StageCache(tmp_path)
    cache.put("abcd", {"v": 1})
    (tmp_path / "ab" / "abcd.json").write_text("{trunc")
    assert cache.run("abcd", lambda: {"v": 2}) == ({"v": 2}, "miss")


def test_parts_survive_a_failed_run_and_go_with_the_finished_one(tmp_path):
    from distill_audit.scan.cache import checkpoint

    cache = StageCache(tmp_path)
    seen = []

    def compute_failing():
        point = checkpoint()
        assert point.enabled and point.get("round-0") is None
        point.put("round-0", {"scores": [1.5, 2.0]})
        return {"result": {"status": "failed"}}

    ok = lambda v: v["result"]["status"] != "failed"  # noqa: E731
    cache.run("k3", compute_failing, cacheable=ok)
    assert cache.get_part("k3", "round-0") == {"scores": [1.5, 2.0]}  # kept for the re-run

    def compute_resuming():
        seen.append(checkpoint().get("round-0"))
        return {"result": {"status": "ok"}}

    cache.run("k3", compute_resuming, cacheable=ok)
    assert seen == [{"scores": [1.5, 2.0]}]
    assert cache.get_part("k3", "round-0") is None  # the whole result is stored: parts dropped
    assert checkpoint().get("round-0") is None and not checkpoint().enabled  # outside a stage


def test_parts_off_and_bad_names(tmp_path):
    import pytest

    from distill_audit.scan.cache import checkpoint

    off = StageCache(tmp_path, enabled=False)

    def compute():
        checkpoint().put("a", 1)
        return checkpoint().get("a")

    assert off.run("k4", compute) == (None, "off")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError):
        StageCache(tmp_path).put_part("k5", "../escape", 1)
    cache = StageCache(tmp_path)
    cache.put_part("k6", "seed-1.arm-a", {"x": 1})
    (tmp_path / "k6"[:2] / "k6.parts" / "seed-1.arm-a.json").write_text("{trunc")
    assert cache.get_part("k6", "seed-1.arm-a") is None  # unreadable: recompute
