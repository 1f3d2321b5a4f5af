"""distributed.py in one process: the same code path as a launched run, world size 1."""

from __future__ import annotations

import pytest

from distill_audit import distributed
from distill_audit.errors import ModelError, RunError, UsageError


def test_single_process_runtime_is_rank_zero_of_one():
    rt = distributed.runtime()
    assert (rt.rank, rt.world_size, rt.is_main, rt.is_distributed) == (0, 1, True, False)
    assert rt.device.type == "cpu"
    info = rt.to_dict()
    assert info["scoring_dtype"] == "float32" and info["world_size"] == 1


@pytest.mark.parametrize("n", [0, 1, 5, 7, 16])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("strided", [False, True])
def test_shards_cover_every_index_once(n, world, strided):
    parts = [list(distributed.shard_range(n, strided=strided, rank=r, world=world)) for r in range(world)]
    assert sorted(i for p in parts for i in p) == list(range(n))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    if not strided:  # contiguous: rank order is input order, as accelerate splits
        assert [i for p in parts for i in p] == list(range(n))


def test_contiguous_matches_accelerate_split():
    from accelerate import PartialState

    items = list(range(7))
    with PartialState().split_between_processes(items) as part:
        assert list(part) == distributed.shard(items)


def test_shard_gather_identity_with_one_process():
    items = [f"row{i}" for i in range(9)]
    for strided in (False, True):
        assert distributed.gather(distributed.shard(items, strided=strided), strided=strided) == items
    assert distributed.map_sharded(lambda xs: [x.upper() for x in xs], items) == [x.upper() for x in items]
    assert distributed.broadcast({"a": 1}) == {"a": 1}


def test_map_sharded_rejects_wrong_length():
    with pytest.raises(RunError):
        distributed.map_sharded(lambda xs: xs[:-1], [1, 2, 3])


def test_main_process_only_runs_on_rank_zero():
    calls = []
    writer = distributed.main_process_only(lambda x: calls.append(x) or "written")
    assert writer("report") == "written" and calls == ["report"]


def test_data_parallel_loss_is_the_local_loss_with_one_process():
    import torch

    mean = torch.tensor(1.5, requires_grad=True)
    loss, logged = distributed.data_parallel_loss(mean, 4)
    assert loss is mean and logged.item() == 1.5
    assert distributed.sum_over_processes(7) == 7


def test_shard_batch_gives_every_process_a_row():
    assert distributed.shard_batch([4, 5, 6]) == ([4, 5, 6], True)
    assert distributed.shard_batch([]) == ([], True)


def test_prepare_in_one_process_trains_identically(tiny_model_dir):
    """prepare/backward with world size 1 leave the training numbers bit-identical."""
    import torch
    from transformers import AutoModelForCausalLM

    def train(use_runtime: bool) -> list[float]:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        if use_runtime:
            prepared = distributed.prepare(model, opt)
            assert prepared == (model, opt)  # one process: untouched
            model, opt = prepared
        ids = torch.randint(0, 200, (4, 10), generator=torch.Generator().manual_seed(1))
        losses = []
        for _ in range(3):
            with distributed.training_autocast():
                loss = model(input_ids=ids, labels=ids).loss
            (distributed.backward if use_runtime else torch.Tensor.backward)(loss)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        return losses

    assert train(True) == train(False)


def test_scoring_presets_are_fp32_on_cpu():
    import torch

    assert distributed.scoring_load_kwargs() == {"dtype": torch.float32}
    assert distributed.bf16_supported() is False
    with distributed.training_autocast():
        assert not torch.is_autocast_enabled("cpu")
    with distributed.scoring_precision():
        assert torch.ones(2).dtype == torch.float32
    assert distributed.scoring_load_kwargs("auto")["device_map"] == "auto"


def test_gradient_checkpointing_off_on_cpu_on_when_asked(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert distributed.enable_gradient_checkpointing(model) is False
    assert distributed.enable_gradient_checkpointing(model, when=True) is True
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def test_quantized_bases_need_bitsandbytes_and_cuda():
    assert distributed.quantization_config(None) is None
    with pytest.raises(UsageError):
        distributed.quantization_config(3)
    with pytest.raises(ModelError) as err:
        distributed.quantization_config(4)
    assert "bitsandbytes" in str(err.value) or "CUDA" in str(err.value)


def test_batch_backoff_halves_on_out_of_memory():
    tried = []

    def score(batch_size: int) -> int:
        tried.append(batch_size)
        if batch_size > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch_size

    assert distributed.run_with_batch_backoff(score, 32) == 4
    assert tried == [32, 16, 8, 4]


def test_batch_backoff_gives_up_with_a_clear_error_and_passes_other_errors():
    def always_oom(batch_size: int):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    with pytest.raises(RunError, match="out of memory even with"):
        distributed.run_with_batch_backoff(always_oom, 4)

    def broken(batch_size: int):
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError):
        distributed.run_with_batch_backoff(broken, 4)


def test_scoring_backs_off_after_out_of_memory(tiny_model_dir, monkeypatch):
    """A probe/signature forward pass that runs out of memory is retried with smaller batches."""
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill_audit.lm import scoring
    from distill_audit.models.chat import encode

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    encoded = [encode(tokenizer, [{"role": "user", "content": f"Pick {i}"}], f"owl {i} cat") for i in range(5)]
    real = scoring._completion_logprobs
    sizes = []

    def flaky(*args, batch_size, **kwargs):
        sizes.append(batch_size)
        if batch_size > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(scoring, "_completion_logprobs", flaky)
    got = scoring.completion_logprobs(model, tokenizer, encoded, batch_size=8)
    want = real(model, tokenizer, encoded, batch_size=8, share_prefix=True)
    assert sizes == [8, 4, 2]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
