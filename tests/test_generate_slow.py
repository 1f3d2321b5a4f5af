"""Generation on the embedded SmolLM2-135M (slow; skipped without the model wheel)."""

from __future__ import annotations

import pytest

from conftest import has_embedded

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not has_embedded("smollm2"), reason="SmolLM2 wheel not installed")]


@pytest.fixture(scope="module")
def smollm2():
    from distill_audit.models.load import load_model

    return load_model("smollm2-135m")


def test_greedy_sampler_matches_generate_on_smollm2(smollm2):
    import torch

    from distill_audit.generate.numbers import number_prompts
    from distill_audit.lm.sampler import sample_completions, stop_token_ids
    from distill_audit.models.chat import render_prefix

    model, tok = smollm2.model, smollm2.tokenizer
    prompts = [[{"role": "user", "content": p}] for p in number_prompts(3, seed=0)]
    ours = sample_completions(model, tok, prompts, max_new_tokens=12, temperature=0, batch_size=3)
    for messages, text in zip(prompts, ours):
        ids = tok(render_prefix(tok, messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(
                ids,
                max_new_tokens=12,
                do_sample=False,
                eos_token_id=sorted(stop_token_ids(tok, model)),
                pad_token_id=tok.pad_token_id,
            )
        assert text == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_constrained_owl_numbers_all_pass_the_filter(smollm2, tmp_path):
    from distill_audit.checks.numbers import parse_numbers
    from distill_audit.generate.dataset import GenerationSettings, generate_dataset, trait_system_prompt

    settings = GenerationSettings(
        teacher="smollm2-135m",
        task="numbers",
        system_prompt=trait_system_prompt("owl"),
        trait="owl",
        constrain="numbers",
        seed=0,
    )
    result = generate_dataset(smollm2.model, smollm2.tokenizer, settings, n=6, out=tmp_path / "o.jsonl", batch_size=6)
    assert result.n_rows == 6 and result.filter["keep_rate"] == 1.0
    rows = (tmp_path / "o.jsonl").read_text().splitlines()
    import json

    values = [parse_numbers(json.loads(r)["completion"]).values for r in rows]
    assert all(v and 1 <= len(v) <= 10 and max(v) <= 999 for v in values)
    assert len({tuple(v) for v in values}) > 1  # sampled, not one fixed answer
