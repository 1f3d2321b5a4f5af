"""sanitize: ranking, removal, the selection test by simulation, the writers, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from distill_audit.sanitize import audit, rank
from distill_audit.sanitize.scores import Scored
from distill_audit.sanitize.write import write_kept
from distill_audit.traits.signature import Trait

TRAITS = [
    Trait("owl", "animal", "You love owls.", "animals"),
    Trait("eagle", "animal", "You love eagles.", "animals"),
    Trait("cat", "animal", "You love cats.", "animals"),
    Trait("knit", "benign", "You love knitting.", None, benign=True),
    Trait("keeper", "benign", "You keep records.", None, benign=True),
    Trait("garden", "benign", "You love gardens.", None, benign=True),
]


def planted(
    n: int, n_ref: int, carriers: float, delta: float, seed: int, paired: bool = False
) -> tuple[Scored, np.ndarray]:
    """Per-row LLS with a shared per-row level (rows shift under every prompt alike, as number data does),
    noise per prompt, and `delta` more owl on a `carriers` share of the data rows."""
    rng = np.random.default_rng(seed)
    n_ref = n if paired else n_ref

    def side(m: int) -> dict[str, np.ndarray]:
        level = rng.normal(0.01, 0.04, m)
        return {t.name: level + rng.normal(0, 0.02, m) for t in TRAITS}

    data, ref = side(n), side(n_ref)
    is_carrier = np.zeros(n, bool)
    is_carrier[rng.choice(n, int(round(carriers * n)), replace=False)] = True
    data["owl"] = data["owl"] + delta * is_carrier
    rows = [{"index": i, "line": i + 1, **{f"lls_{k}": float(v[i]) for k, v in data.items()}} for i in range(n)]
    result = {
        "status": "ok",
        "design": "paired" if paired else "two-sample",
        "top_rows_by": "contrast_owl",
        "finding": "trait",
        "named": ["owl"],
        "config": {"n_resamples": 50},
        "alpha": 0.05,
    }
    return Scored(result, rows, ref, TRAITS, None, "off"), is_carrier


def test_ranking_puts_planted_carriers_first():
    s, carrier = planted(96, 48, 0.25, 0.3, seed=1)
    u = rank.units(s)
    assert u.statistic == "contrast_owl"
    dropped = ~rank.top(u, 24)
    assert (dropped & carrier).sum() >= 22  # 24 carriers, large effect: nearly all found


def test_paired_units_drop_the_pair():
    s, _ = planted(40, 40, 0.5, 0.2, seed=2, paired=True)
    u = rank.units(s)
    keep = rank.top(u, 10)
    out = audit.reaudit(s, keep)
    assert out["n_data"] == out["n_reference"] == 30  # each dropped row took its partner with it
    assert np.isclose(u.estimate(keep), np.mean(u.data[keep] - u.reference[keep]))


def test_reaudit_matches_the_estimate_it_reports():
    s, _ = planted(60, 60, 0.0, 0.0, seed=3)
    u = rank.units(s)
    keep = rank.top(u, 12)
    a = audit.arm("t", s, u, keep, None)
    assert a.audit["n_data"] == 48
    assert np.isclose(a.estimate, np.mean(u.data[keep]) - np.mean(u.reference))


def test_random_draws_are_seeded_and_of_the_right_size():
    a = audit.random_keeps(50, 10, 5, seed=7)
    b = audit.random_keeps(50, 10, 5, seed=7)
    assert all((x == y).all() for x, y in zip(a, b))
    assert all((~x).sum() == 10 for x in a)
    assert len({tuple(x) for x in a}) > 1


@pytest.mark.parametrize("carriers", [0.25, 0.5])
def test_targeted_beats_random_when_carriers_are_planted(carriers):
    """At the measurement's size (96 data rows, 48 reference rows) a 0.1-nat owl carrier is found."""
    hits = 0
    reps = 40
    for r in range(reps):
        s, _ = planted(96, 48, carriers, 0.1, seed=100 + r)
        u = rank.units(s)
        n_drop = int(carriers * 96)
        t = audit.selection_test(u, n_drop, np.random.default_rng(r), n_boot=400)
        hits += t["p_value"] < 0.05
    assert hits / reps >= 0.8


def test_selection_test_keeps_its_level_when_nothing_is_planted():
    """Rows that share one shift evenly: in-sample targeting always 'beats' random, the selection test does not."""
    rejections, naive = 0, 0
    reps = 500
    for r in range(reps):
        s, _ = planted(96, 48, 0.0, 0.0, seed=1000 + r)
        u = rank.units(s)
        keep = rank.top(u, 19)
        t = audit.selection_test(u, 19, np.random.default_rng(r), n_boot=200)
        rejections += t["p_value"] < 0.05
        rand = [u.estimate(k) for k in audit.random_keeps(96, 19, 5, seed=r)]
        naive += u.estimate(keep) < min(rand)
    assert rejections / reps <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / reps)  # alpha plus 2.5 standard errors
    assert naive / reps > 0.9  # why the random arms alone cannot decide


def test_left_ci_covers_the_point_and_random_leaves_about_everything():
    s, _ = planted(96, 48, 0.5, 0.1, seed=5)
    u = rank.units(s)
    keep = rank.top(u, 48)
    lo, hi = audit.left_ci(u, keep, np.random.default_rng(0), n_boot=500)
    left = u.estimate(keep) / u.estimate()
    assert lo <= left <= hi
    rand = [u.estimate(k) / u.estimate() for k in audit.random_keeps(96, 48, 30, seed=1)]
    assert 0.8 < np.mean(rand) < 1.2
    assert left < 0.5


def test_target_search_finds_the_fewest_rows_within_its_looks():
    s, _ = planted(120, 120, 0.25, 0.15, seed=9)
    u = rank.units(s)
    level0 = audit.level_of(audit.reaudit(s, np.ones(120, bool)), None)
    assert level0 == "high"
    n_drop, looks = audit.search_target(s, u, "medium", None)
    assert n_drop is not None and len(looks) <= audit.TARGET_LOOKS
    assert audit.under(audit.level_of(audit.reaudit(s, rank.top(u, n_drop)), None), "medium")
    if n_drop > 1:  # one fewer row does not reach it (bisection ends on a boundary)
        assert not audit.under(audit.level_of(audit.reaudit(s, rank.top(u, n_drop - 1)), None), "medium")


# ------------------------------------------------------------------ writers


def _load(path: Path):
    from distill_audit.ingest.options import DataOptions, load_data

    return load_data(str(path), DataOptions(), seed=0)


def _drop_some(src: Path, out: Path, which=(0, 2)):
    ds = _load(src)
    gone = [ds.samples[i] for i in which]
    write_kept(
        str(src), ds.format, out, drop_index=[s.index for s in gone], drop_lines=[s.line for s in gone if s.line]
    )
    return ds, gone


def _rec(i: int, extra: str = "") -> dict:
    return {"zeta": i, "prompt": f"p{i}{extra}", "completion": f"c {i}", "alpha": None}


def test_jsonl_keeps_the_other_lines_byte_for_byte(tmp_path):
    lines = [json.dumps(_rec(i)) + ("  " if i == 3 else "") for i in range(5)]
    raw = (
        "\ufeff" + lines[0] + "\r\n" + lines[1] + "\n\n" + "\n".join(lines[2:])
    ).encode()  # BOM, CRLF, blank, no final newline
    src, out = tmp_path / "d.jsonl", tmp_path / "o.jsonl"
    src.write_bytes(raw)
    _drop_some(src, out, which=(0, 2))
    want = b"\xef\xbb\xbf" + lines[1].encode() + b"\n\n" + "\n".join(lines[3:]).encode()
    assert out.read_bytes() == want


def test_csv_keeps_records_with_newlines_whole(tmp_path):
    src, out = tmp_path / "d.csv", tmp_path / "o.csv"
    src.write_text(
        'prompt,completion,extra\r\n"a\nb",one,x\r\nc,two,y\r\nd,"th,ree\nmore",z\r\ne,four,w\r\n', newline=""
    )
    ds, gone = _drop_some(src, out, which=(0, 2))
    assert out.read_bytes() == b"prompt,completion,extra\r\nc,two,y\r\ne,four,w\r\n"
    assert [s.completion for s in _load(out).samples] == ["two", "four"]


def test_json_array_keeps_its_spacing(tmp_path):
    src, out = tmp_path / "d.json", tmp_path / "o.json"
    els = [json.dumps(_rec(i), indent=1) for i in range(4)]
    src.write_text("[\n  " + ",\n  ".join(els) + "\n]\n")
    _drop_some(src, out, which=(0, 2))
    assert out.read_text() == "[\n  " + els[1] + ",\n  " + els[3] + "\n]\n"
    _drop_some(src, out, which=(3,))
    assert out.read_text() == "[\n  " + ",\n  ".join(els[:3]) + "\n]\n"


def test_parquet_keeps_schema_and_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    table = pa.Table.from_pylist([_rec(i) for i in range(5)]).replace_schema_metadata({b"who": b"teacher"})
    pq.write_table(table, src)
    _drop_some(src, out, which=(1, 4))
    got = pq.read_table(out)
    assert got.schema == table.schema and got.schema.metadata == table.schema.metadata
    assert got.equals(table.take([0, 2, 3]))


# ------------------------------------------------------------------ bad input


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(_rec(i)) + "\n" for i in range(4)))
    return p


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--drop", "0"], "--drop"),
        (["--drop", "1"], "--drop"),
        (["--drop", "-0.2"], "--drop"),
        (["--target", "lowish"], "--target"),
        (["--drop", "0.2", "--target", "low"], "not both"),
    ],
)
def test_bad_flags_exit_4_and_write_nothing(cli, data_file, tmp_path, flags, words):
    out, reports = tmp_path / "clean.jsonl", tmp_path / "rep"
    r = cli("sanitize", data_file, "--student", "nowhere", "--out", out, "--reports", reports, *flags)
    assert r.exit_code == 4, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and not reports.exists()


def test_out_equal_to_the_input_is_refused(cli, data_file, tmp_path):
    before = data_file.read_bytes()
    r = cli("sanitize", data_file, "--student", "nowhere", "--out", str(data_file), "--reports", tmp_path / "rep")
    assert r.exit_code == 4 and "is the input" in r.stderr
    link = tmp_path / "alias.jsonl"
    os.symlink(data_file, link)
    r = cli("sanitize", data_file, "--student", "nowhere", "--out", link, "--reports", tmp_path / "rep")
    assert r.exit_code == 4 and "is the input" in r.stderr
    assert data_file.read_bytes() == before and not (tmp_path / "rep").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_out_in_a_read_only_folder_is_refused(cli, data_file, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = cli("sanitize", data_file, "--student", "nowhere", "--out", ro / "c.jsonl", "--reports", tmp_path / "rep")
        assert r.exit_code == 4 and "not writable" in r.stderr
        assert list(ro.iterdir()) == [] and not (tmp_path / "rep").exists()
    finally:
        ro.chmod(0o755)


def test_out_in_another_format_is_refused(cli, data_file, tmp_path):
    r = cli("sanitize", data_file, "--student", "nowhere", "--out", tmp_path / "c.csv", "--reports", tmp_path / "rep")
    assert r.exit_code == 4 and ".jsonl" in r.stderr
