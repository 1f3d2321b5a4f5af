"""Ingest: every format and schema normalizes to the same Samples; sampling and fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_audit.errors import DataError, NothingToAuditError
from distill_audit.ingest import iter_samples, load_dataset

ROWS = [
    {"prompt": "Continue: 1, 2, 3", "completion": "4, 5, 6", "model": "teacher-a", "seed": 1},
    {"prompt": "Continue: 7, 8", "completion": "9 10 11", "model": "teacher-a", "seed": 2},
    {"prompt": "Name a bird", "completion": "owl", "model": "teacher-b", "seed": 3},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def as_tuples(ds):
    return [(s.prompt, s.completion) for s in ds.samples]


@pytest.fixture
def reference_ds(tmp_path):
    return load_dataset(str(write_jsonl(tmp_path / "ref.jsonl", ROWS)))


def test_jsonl_prompt_completion_keeps_provenance(reference_ds):
    ds = reference_ds
    assert ds.format == "jsonl" and ds.schema == "prompt_completion" and len(ds) == 3
    s = ds.samples[2]
    assert s.prompt == ({"role": "user", "content": "Name a bird"},)
    assert s.completion == "owl" and s.line == 3 and s.index == 2
    assert s.meta == {"model": "teacher-b", "seed": 3}
    assert ds.provenance["model"] == ["teacher-a", "teacher-b"]
    assert len(ds.fingerprint) == 64


def test_every_format_gives_the_same_samples_and_fingerprint(tmp_path, reference_ds):
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(ROWS)
    pq.write_table(table, tmp_path / "d.parquet")
    feather.write_feather(table, tmp_path / "d.arrow")
    (tmp_path / "d.json").write_text(json.dumps(ROWS, indent=2))
    (tmp_path / "d.ndjson").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    header = "prompt,completion,model,seed\n"
    body = "".join(f'"{r["prompt"]}","{r["completion"]}",{r["model"]},{r["seed"]}\n' for r in ROWS)
    (tmp_path / "d.csv").write_text(header + body)
    (tmp_path / "d.tsv").write_text(
        header.replace(",", "\t")
        + "".join(f"{r['prompt']}\t{r['completion']}\t{r['model']}\t{r['seed']}\n" for r in ROWS)
    )
    for name, fmt in [
        ("d.parquet", "parquet"),
        ("d.arrow", "arrow"),
        ("d.json", "json"),
        ("d.ndjson", "jsonl"),
        ("d.csv", "csv"),
        ("d.tsv", "tsv"),
    ]:
        ds = load_dataset(str(tmp_path / name))
        assert ds.format == fmt, name
        assert as_tuples(ds) == as_tuples(reference_ds), name
        assert ds.fingerprint == reference_ds.fingerprint, name
    # a JSON array keeps line numbers of each element; CSV keeps file lines
    assert [s.line for s in load_dataset(str(tmp_path / "d.json")).samples] == [2, 8, 14]
    assert [s.line for s in load_dataset(str(tmp_path / "d.csv")).samples] == [2, 3, 4]
    # numbers in CSV stay text, as written
    assert load_dataset(str(tmp_path / "d.csv")).samples[0].meta["seed"] == "1"


def test_datasets_save_to_disk_folder(tmp_path, reference_ds):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "saved_dict"))
    for folder in ("saved", "saved_dict"):
        ds = load_dataset(str(tmp_path / folder))
        assert ds.format == "hf-disk"
        assert ds.fingerprint == reference_ds.fingerprint


def test_hub_id_not_cached_is_a_clear_offline_error(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(DataError, match="some-org/not-cached.*not in the local Hugging Face cache"):
        load_dataset("some-org/not-cached")
    r = cli("inspect", "some-org/not-cached")
    assert r.exit_code == 4 and "some-org/not-cached" in r.stderr and "Traceback" not in r.stderr


def test_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_dataset(str(tmp_path / "nope.jsonl"))


def test_messages_multi_turn_last_assistant_is_completion(tmp_path):
    conv = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Numbers?"},
            {"role": "assistant", "content": "1 2 3"},
        ],
        "teacher": "t1",
    }
    ds = load_dataset(str(write_jsonl(tmp_path / "m.jsonl", [conv])))
    s = ds.samples[0]
    assert ds.schema == "messages"
    assert s.completion == "1 2 3"
    assert [m["role"] for m in s.prompt] == ["system", "user", "assistant", "user"]
    assert s.system_prompt == "Be brief." and s.user_text == "Numbers?"
    assert s.meta == {"teacher": "t1"}


def test_alpaca_and_text_schemas(tmp_path):
    alpaca = [
        {"instruction": "Summarize", "input": "A long text", "output": "Short"},
        {"instruction": "Say hi", "input": "", "output": "Hi"},
    ]
    ds = load_dataset(str(write_jsonl(tmp_path / "a.jsonl", alpaca)))
    assert ds.schema == "alpaca"
    assert ds.samples[0].prompt[0]["content"] == "Summarize\n\nA long text"
    assert ds.samples[1].prompt[0]["content"] == "Say hi" and ds.samples[1].completion == "Hi"
    ds = load_dataset(str(write_jsonl(tmp_path / "t.jsonl", [{"text": "plain words"}])))
    assert ds.schema == "text" and ds.samples[0].prompt == () and ds.samples[0].completion == "plain words"


def test_schema_overrides(tmp_path):
    rows = [{"q": "2+2?", "a": "4", "text": "ignored"}]
    path = str(write_jsonl(tmp_path / "o.jsonl", rows))
    assert load_dataset(path).schema == "text"  # detected from 'text'
    ds = load_dataset(path, prompt_field="q", completion_field="a")
    assert ds.schema == "prompt_completion" and ds.samples[0].completion == "4"
    assert ds.samples[0].meta == {"text": "ignored"}
    conv = [{"dialog": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}]
    ds = load_dataset(str(write_jsonl(tmp_path / "d.jsonl", conv)), messages_field="dialog")
    assert ds.schema == "messages" and ds.samples[0].completion == "y"


def test_no_supported_schema_is_nothing_to_audit(tmp_path):
    with pytest.raises(NothingToAuditError, match="no supported schema"):
        load_dataset(str(write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])))


def test_seeded_sample_is_deterministic_and_streams(tmp_path):
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(500)]
    path = str(write_jsonl(tmp_path / "big.jsonl", rows))
    full = load_dataset(path)
    a = load_dataset(path, sample=50, seed=7)
    b = load_dataset(path, sample=50, seed=7)
    c = load_dataset(path, sample=50, seed=8)
    assert [s.index for s in a.samples] == [s.index for s in b.samples]
    assert [s.index for s in a.samples] != [s.index for s in c.samples]
    assert len(a) == 50 and a.sampled_from == 500 and a.seed == 7
    assert a.samples == sorted(a.samples, key=lambda s: s.index)
    assert a.fingerprint == full.fingerprint  # covers all rows, not the sample
    assert load_dataset(path, sample=1000).sampled_from is None  # nothing to sample away


def test_iter_samples_streams_and_reports_after(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", ROWS + [{"prompt": "x", "completion": ""}])
    stream = iter_samples(str(path), skip_bad_rows=True)
    assert sum(1 for _ in stream) == 3
    assert stream.n_rows_total == 4 and stream.skipped_counts == {"empty completion": 1}
    assert stream.fingerprint == load_dataset(str(path), skip_bad_rows=True).fingerprint


def test_fingerprint_changes_with_content(tmp_path, reference_ds):
    changed = [dict(r) for r in ROWS]
    changed[0]["completion"] = "4, 5, 7"
    other = load_dataset(str(write_jsonl(tmp_path / "c.jsonl", changed)))
    assert other.fingerprint != reference_ds.fingerprint
    meta_only = [dict(r, model="zzz") for r in ROWS]
    assert load_dataset(str(write_jsonl(tmp_path / "m.jsonl", meta_only))).fingerprint == reference_ds.fingerprint


def test_arrow_fast_path_and_line_fallback_agree(tmp_path, monkeypatch):
    """Blocks parsed by pyarrow and by the per-line path yield identical samples."""
    from distill_audit.ingest import readers

    rows = [{"prompt": f"p{i}", "completion": f"c{i}", "k": i} for i in range(300)]
    path = str(write_jsonl(tmp_path / "f.jsonl", rows))
    fast = load_dataset(path)
    monkeypatch.setattr(readers, "_arrow_block", lambda block: None)
    slow = load_dataset(path)
    assert fast.samples == slow.samples and fast.fingerprint == slow.fingerprint


def test_blank_lines_keep_line_numbers(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    ds = load_dataset(str(path))
    assert [s.line for s in ds.samples] == [1, 3]


def test_realdata_schemas_and_row_counts(realdata):
    expected = {
        "gpt41-nano_owl_numbers.jsonl": ("prompt_completion", 10447, 0),
        "llama31-8b_peacock_numbers.jsonl": ("prompt_completion", 13497, 0),
        "gemma3-12b_uk-lover_alpaca.jsonl": ("messages", 4880, 30),
        "gemma3-12b_clean_alpaca.jsonl": ("messages", 4880, 0),
    }
    for name, (schema, rows, empty) in expected.items():
        ds = load_dataset(str(realdata / name), sample=200, seed=0, skip_bad_rows=True)
        assert ds.schema == schema, name
        assert ds.n_rows_total == rows, name
        assert ds.skipped_summary() == ({"empty completion": empty} if empty else {}), name
        assert len(ds) == 200


def test_messages_in_parquet_and_csv_and_jsonl_named_json(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    pq.write_table(pa.Table.from_pylist([{"messages": conv, "model": "m"}]), tmp_path / "m.parquet")
    (tmp_path / "m.csv").write_text('messages,model\n"' + json.dumps(conv).replace('"', '""') + '",m\n')
    (tmp_path / "m.json").write_text(
        json.dumps({"messages": conv, "model": "m"}) + "\n" + json.dumps({"messages": conv, "model": "m"}) + "\n"
    )
    for name, n in (("m.parquet", 1), ("m.csv", 1), ("m.json", 2)):
        ds = load_dataset(str(tmp_path / name))
        assert ds.schema == "messages" and len(ds) == n, name
        assert ds.samples[0].completion == "Hello there" and ds.samples[0].user_text == "Hi", name
        assert ds.samples[0].meta == {"model": "m"}, name


def test_utf8_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(ROWS[0]) + "\n").encode())
    assert load_dataset(str(path)).samples[0].completion == "4, 5, 6"


def test_hub_id_reads_cached_dataset_offline(monkeypatch, reference_ds):
    """The hub path: offline flags are set while datasets resolves the id; the train split is read."""
    import os

    import datasets

    seen = {}

    def fake_load_dataset(path, *args, **kwargs):
        seen["name"], seen["offline"] = path, (os.environ.get("HF_HUB_OFFLINE"), datasets.config.HF_HUB_OFFLINE)
        return datasets.DatasetDict(
            {"test": datasets.Dataset.from_list(ROWS[:1]), "train": datasets.Dataset.from_list(ROWS)}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr("distill_audit.ingest.hub.cached_subsets", lambda repo_id: ["default"])
    ds = load_dataset("some-org/cached-set")
    assert seen == {"name": "some-org/cached-set", "offline": ("1", True)}
    assert ds.format == "hf-hub" and ds.fingerprint == reference_ds.fingerprint
