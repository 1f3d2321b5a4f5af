"""Lineage: name normalization, the registry, verdicts on the issue's pairs, the weight test."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import has_embedded
from distill_audit.lineage import check_lineage
from distill_audit.lineage.weights import aligned_test, fisher, matched_test
from distill_audit.models.names import normalize_name
from distill_audit.models.registry import load_registry


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("llama3.1:8b-instruct-q4_K_M", "llama-3.1-8b"),
        ("bartowski/Llama-3.1-8B-Instruct-GGUF", "llama-3.1-8b"),
        ("openai/gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-4o:latest", "gpt-4o"),
        ("gpt-4-0613", "gpt-4"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "qwen2.5-7b"),
        ("Qwen2.5-7B-Instruct-Q4_K_M.gguf", "qwen2.5-7b"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m"),
        ("google/gemma-3-270m-it", "gemma-3-270m"),
        ("gemma3:270m", "gemma-3-270m"),
        ("meta-llama/Llama-2-7b-chat-hf", "llama-2-7b"),
        ("mistralai/Mistral-7B-Instruct-v0.2", "mistral-7b-v0.2"),
        ("allenai/OLMo-2-1124-7B-Instruct", "olmo-2-1124-7b"),
    ],
)
def test_normalize_name(name, key):
    assert normalize_name(name) == key


def test_registry_entries_all_carry_evidence():
    registry = load_registry()
    assert len(registry.members) > 150
    for key, member in registry.members.items():
        assert member.evidence and all(len(e) > 15 for e in member.evidence), key
    for _kind, line in registry.relations.values():
        assert ":" in line and len(line) > 30, line


@pytest.mark.parametrize(
    ("teacher", "student", "expected"),
    [
        ("gpt-4.1", "gpt-4o", {"same-init"}),
        ("gpt-4.1-nano", "Qwen/Qwen2.5-7B-Instruct", {"different-init"}),
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct", {"same-family-different-init"}),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "Qwen/Qwen2.5-7B", {"same-init", "possible-shared-init"}),
        ("meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.1-8B", {"possible-shared-init"}),
        ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", {"different-init"}),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "meta-llama/Llama-3.1-8B-Instruct", {"same-init"}),
        ("o3-mini", "gemini-2.5-pro", {"different-init"}),
        ("google/gemma-2-9b-it", "google/gemma-3-12b-it", {"same-family-different-init"}),
        ("gpt-4.1-nano", "gpt-4o-mini", {"unknown"}),  # same vendor, relation not public
        ("claude-3-5-sonnet", "gpt-4o", {"different-init"}),
    ],
)
def test_name_pairs(teacher, student, expected):
    result = check_lineage(teacher, student)
    assert result.verdict in expected, result.to_dict()
    assert result.decided_by == ("registry" if result.verdict != "unknown" else None)
    registry_ev = next(e for e in result.evidence if e.name == "registry")
    assert registry_ev.details["evidence"], "the registry verdict must cite its sources"


@pytest.mark.skipif(not (has_embedded("smollm2") and has_embedded("gemma3")), reason="embedded models not installed")
def test_smollm2_vs_gemma3_is_different_init():
    result = check_lineage("smollm2-135m", "gemma3-270m")
    assert result.verdict == "different-init"
    meta = next(e for e in result.evidence if e.name == "metadata")
    assert "hidden_size 576 vs 640" in meta.summary
    weights = next(e for e in result.evidence if e.name == "weights")
    assert weights.verdict is None and "different" in weights.summary


def test_unknown_name_is_unknown_not_error(cli):
    result = check_lineage("mystery-model-7b", "gpt-4o")
    assert result.verdict == "unknown" and "mystery-model-7b" in result.reason
    r = cli("lineage", "mystery-model-7b", "gpt-4o", "--format", "json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["verdict"] == "unknown" and data["status"] == "ok" and "not in the lineage registry" in data["reason"]
    assert [e["tier"] for e in data["evidence"]] == [0, 1, 2, 3]


def test_no_teacher_is_unknown_with_reason():
    result = check_lineage(None, "gpt-4o")
    assert result.verdict == "unknown" and result.status == "skipped" and "no teacher" in result.reason
    json.dumps(result.to_dict(), allow_nan=False)


def test_cli_table(cli):
    r = cli("lineage", "gpt-4.1", "gpt-4o")
    assert r.exit_code == 0
    assert "same-init" in r.stdout and "Cloud et al. 2025" in r.stdout


# -- the weight test ------------------------------------------------------------------------


def test_permutation_pvalues_are_calibrated():
    """Independent random pairs: P(p <= alpha) is within 1% of alpha (3000 pairs per test)."""
    rng = np.random.default_rng(12345)
    n_pairs, n_perm = 3000, 199
    aligned, matched, combined = [], [], []
    for _ in range(n_pairs):
        a = rng.standard_normal((24, 12)).astype(np.float32)
        b = rng.standard_normal((24, 12)).astype(np.float32)
        aligned.append(aligned_test(a, b, n_perm=n_perm, rng=rng, max_rows=1024)[1])
        matched.append(matched_test(a, b, n_perm=n_perm, rng=rng, max_rows=1024)[1])
    aligned, matched = np.array(aligned), np.array(matched)
    combined = np.array([fisher(list(aligned[i : i + 3])) for i in range(0, n_pairs - 2, 3)])
    for alpha in (0.05, 0.10):
        assert abs(np.mean(aligned <= alpha) - alpha) < 0.01, (alpha, np.mean(aligned <= alpha))
        assert abs(np.mean(matched <= alpha) - alpha) < 0.01, (alpha, np.mean(matched <= alpha))
    # Fisher over three layers: fewer combined values, so a looser (3 sd) bound.
    assert abs(np.mean(combined <= 0.05) - 0.05) < 0.025


def test_weight_test_detects_shared_origin_even_when_permuted():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 64)).astype(np.float32)
    tuned = a + 0.3 * rng.standard_normal(a.shape).astype(np.float32)
    permuted = tuned[rng.permutation(128)]
    unrelated = rng.standard_normal(a.shape).astype(np.float32)
    assert aligned_test(a, tuned, n_perm=999, rng=rng, max_rows=1024)[1] == pytest.approx(1 / 1000)
    assert aligned_test(a, permuted, n_perm=999, rng=rng, max_rows=1024)[1] > 0.01  # hidden by the permutation
    assert matched_test(a, permuted, n_perm=999, rng=rng, max_rows=1024)[1] == pytest.approx(1 / 1000)
    assert matched_test(a, unrelated, n_perm=999, rng=rng, max_rows=1024)[1] > 0.01


def _perturbed_copy(src, dst, *, noise: float, permute: bool, seed: int = 0):
    """Copy a tiny model with small noise on every weight and, optionally, permuted MLP units."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(src))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * p.std() * torch.randn_like(p))
        if permute:
            for layer in model.model.layers:
                perm = torch.randperm(layer.mlp.up_proj.weight.shape[0])
                layer.mlp.up_proj.weight.copy_(layer.mlp.up_proj.weight[perm])
                layer.mlp.gate_proj.weight.copy_(layer.mlp.gate_proj.weight[perm])
                layer.mlp.down_proj.weight.copy_(layer.mlp.down_proj.weight[:, perm])
    model.save_pretrained(dst)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / f, dst / f)
    return dst


def test_tiny_models_weight_tier(tmp_path, tiny_model_dir, tiny_model_dir_other):
    tuned = _perturbed_copy(tiny_model_dir, tmp_path / "tuned", noise=0.1, permute=False)
    shuffled = _perturbed_copy(tiny_model_dir, tmp_path / "shuffled", noise=0.1, permute=True)

    same = check_lineage(str(tiny_model_dir), str(tuned))
    assert same.verdict == "same-init" and same.decided_by == "weights"
    weights = next(e for e in same.evidence if e.name == "weights").details
    assert weights["p_value"] < 1e-6 and weights["permutations"] == 9999

    hidden = check_lineage(str(tiny_model_dir), str(shuffled))
    assert hidden.verdict == "same-init", hidden.summary
    details = next(e for e in hidden.evidence if e.name == "weights").details
    assert details["matched_p"] < 1e-6 < details["aligned_p"]

    other = check_lineage(str(tiny_model_dir), str(tiny_model_dir_other))
    assert other.verdict == "different-init" and other.confidence == "medium"  # never high from weights alone
    # Both folders are called "model": folder names must not make them "the same model".
    assert next(e for e in other.evidence if e.name == "names").verdict is None

    skipped = check_lineage(str(tiny_model_dir), str(tuned), use_weights=False)
    assert skipped.decided_by != "weights"


def test_weight_tier_is_deterministic(tiny_model_dir, tiny_model_dir_other):
    def run() -> dict:
        result = check_lineage(str(tiny_model_dir), str(tiny_model_dir_other), seed=3).to_dict()
        for layer in result["evidence"][3]["details"]["layers"]:
            layer.pop("seconds")  # wall time is the only thing allowed to differ
        return result

    assert run() == run()


def test_declared_base_model_chain(tmp_path, tiny_model_dir):
    """A model card's base_model links a local fine-tune to its registry family."""
    tuned = _perturbed_copy(tiny_model_dir, tmp_path / "my-finetune", noise=0.1, permute=False)
    (tuned / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-7B\nlicense: mit\n---\n# my fine-tune\n")
    result = check_lineage("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", str(tuned), use_weights=False)
    assert result.verdict == "same-init", result.to_dict()
    registry_ev = next(e for e in result.evidence if e.name == "registry")
    assert registry_ev.details["student_lookup"] == "Qwen/Qwen2.5-7B"


def test_gguf_base_model_metadata(tmp_path):
    """GGUF general.base_model.* links a quantized fine-tune to its base."""
    import gguf

    path = tmp_path / "finetune.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_string("general.name", "Owl Tuned")
    writer.add_uint32("general.base_model.count", 1)
    writer.add_string("general.base_model.0.name", "Qwen2.5 7B")
    writer.add_string("general.base_model.0.organization", "Qwen")
    writer.add_string("general.base_model.0.repo_url", "https://huggingface.co/Qwen/Qwen2.5-7B")
    writer.add_tensor("blk.0.ffn_up.weight", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    result = check_lineage("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", str(path))
    assert result.verdict == "same-init" and result.decided_by == "registry"
    meta = next(e for e in result.evidence if e.name == "metadata")
    assert meta.details["student"]["ancestors"] == [
        {"name": "Qwen/Qwen2.5-7B", "source": "GGUF general.base_model.0.*"}
    ]
    other = check_lineage("gpt-4.1-nano", str(path))
    assert other.verdict == "different-init"


def test_same_tokenizer_is_not_same_init(tiny_model_dir, tiny_model_dir_other):
    result = check_lineage(str(tiny_model_dir), str(tiny_model_dir_other))
    meta = next(e for e in result.evidence if e.name == "metadata")
    assert meta.details["same_tokenizer"] is True and meta.verdict is None
    assert "same family at most" in meta.summary
    assert result.verdict != "same-init"
