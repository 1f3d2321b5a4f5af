"""The only module that knows about processes and devices (Hugging Face accelerate).

A scan runs unchanged as one process (`distill-audit scan ...`) or as several
(`accelerate launch -m distill_audit scan ...`; torchrun underneath, DDP or FSDP by
the accelerate config). Stages never look at ranks themselves; they call:

- `shard(items)` / `gather(results)`: each process scores its share of the rows, and
  every process gets the full list back in input order (so rank 0 can run the
  statistics over all rows and write the report);
- `shard_batch(batch)`, `prepare(model, optimizer)`, `data_parallel_loss(...)`, `backward(loss)`:
  data-parallel training with the same global batch and seed semantics as one process;
- `is_main()` / `main_process_only`: only rank 0 writes reports and cache entries;
- GPU presets: bf16 autocast for training where the device supports it, gradient
  checkpointing, `device_map="auto"` for scoring students larger than one GPU, an
  out-of-memory back-off for batch sizes, and 4-/8-bit LoRA bases via bitsandbytes.

Scoring (probes, the data signature) always runs in float32: `SCORING_DTYPE`. With one
process every helper degrades to the identity (world size 1, rank 0), so a single
process goes through exactly this code path and gives the same numbers as before.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from distill_audit.errors import ModelError, RunError, UsageError

T = TypeVar("T")

# Probes and signatures are log-probability differences of a few hundredths of a nat;
# bf16 (8 bits of mantissa) would drown them. Scoring never autocasts.
SCORING_DTYPE_NAME = "float32"


def _scoring_dtype():
    import torch

    return torch.float32


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def use_cpu() -> bool:
    """Run on CPU: no CUDA device, or asked for (`accelerate launch --cpu`, DISTILL_AUDIT_DEVICE=cpu).

    accelerate's own state only switches to multi-process CPU (gloo) when told `cpu=True`;
    its multi-GPU launcher does not say so on a machine without GPUs, so we decide here.
    """
    import torch

    if os.environ.get("DISTILL_AUDIT_DEVICE", "").strip().lower() == "cpu" or _flag("ACCELERATE_USE_CPU"):
        return True
    return not torch.cuda.is_available()


@dataclass(frozen=True)
class Runtime:
    """Where this process stands: its rank among `world_size` processes and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: Any  # torch.device
    distributed_type: str  # accelerate's name: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED ...
    backend: str | None  # gloo, nccl, ... (None for one process)
    fsdp_requested: bool  # the accelerate config asked for FSDP

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def to_dict(self) -> dict:
        """For the report's environment section."""
        limits = []
        if self.fsdp_requested and self.distributed_type != "FSDP":
            limits.append(
                f"FSDP was requested but accelerate runs {self.distributed_type} on this device "
                "(accelerate shards with FSDP on GPUs only); data parallelism is unchanged"
            )
        return {
            "world_size": self.world_size,
            "rank": self.rank,
            "device": str(self.device),
            "distributed_type": self.distributed_type,
            "backend": self.backend,
            "scoring_dtype": SCORING_DTYPE_NAME,
            "training_autocast": "bfloat16" if bf16_supported(self.device) else None,
            "limits": limits,
        }


@functools.cache
def _state():
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


@functools.cache
def runtime() -> Runtime:
    """The process runtime, created on first use (a plain command never starts one)."""
    state = _state()
    return Runtime(
        rank=int(state.process_index),
        local_rank=int(state.local_process_index),
        world_size=int(state.num_processes),
        device=state.device,
        distributed_type=str(state.distributed_type).split(".")[-1],
        backend=state.backend,
        fsdp_requested=_flag("ACCELERATE_USE_FSDP"),
    )


def is_main() -> bool:
    """True on rank 0, the only process that writes reports, caches and Parquet files."""
    return runtime().is_main


def world_size() -> int:
    return runtime().world_size


def wait_for_everyone() -> None:
    """A barrier (no-op for one process)."""
    if runtime().is_distributed:
        _state().wait_for_everyone()


def main_process_only(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Decorator: run `fn` on rank 0 only (others return None), e.g. report writers."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main() else None

    return wrapper


# ----------------------------------------------------------------------------- sharding


def shard_range(n: int, *, strided: bool = False, rank: int | None = None, world: int | None = None) -> range:
    """The indices of `n` items this process handles; deterministic, covering each once.

    Contiguous (default): the first `n % world` ranks take one extra item, as accelerate's
    `split_between_processes` does. Strided: rank r takes r, r+world, ... (balances work
    when items are sorted by length).
    """
    rt = runtime() if rank is None or world is None else None
    rank = rt.rank if rank is None else rank
    world = rt.world_size if world is None else world
    if n < 0 or not 0 <= rank < world:
        raise ValueError(f"bad shard: n={n} rank={rank} world={world}")
    if strided:
        return range(rank, n, world)
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def shard(items: Sequence[T], *, strided: bool = False) -> list[T]:
    """This process's share of `items` (all of them when there is one process)."""
    return [items[i] for i in shard_range(len(items), strided=strided)]


def gather(local: Sequence[T], *, strided: bool = False) -> list[T]:
    """Every process's `local` results joined back into input order, on every rank.

    `local` must be the results for `shard(items, strided=...)` in the same order. Uses
    accelerate's `gather_object` (torch.distributed.all_gather_object), so results may
    be any picklable objects (floats, numpy arrays, dicts).
    """
    rt = runtime()
    if not rt.is_distributed:
        return list(local)
    from accelerate.utils import gather_object

    per_rank: list[list[T]] = gather_object([list(local)])
    if len(per_rank) != rt.world_size:
        raise RunError(f"gather returned {len(per_rank)} shards for {rt.world_size} processes")
    if not strided:
        return [x for part in per_rank for x in part]
    n = sum(len(p) for p in per_rank)
    out: list[T] = [None] * n  # type: ignore[list-item]
    for r, part in enumerate(per_rank):
        for j, x in enumerate(part):
            out[r + j * rt.world_size] = x
    return out


def shard_batch(batch: Sequence[T]) -> tuple[list[T], bool]:
    """This process's rows of one global training batch, and whether they count.

    Every process must run forward and backward at every step (DDP synchronises the
    gradients), even when the last batch has fewer rows than processes: such a process
    gets the batch's first row back with `counts=False` and must weight its loss by 0.
    """
    local = shard(batch)
    if local or not batch:
        return local, True
    return [batch[0]], False


def broadcast(obj: T) -> T:
    """Rank 0's `obj` on every process (e.g. a cache hit that only rank 0 looked up)."""
    if not runtime().is_distributed:
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj]
    broadcast_object_list(box, from_process=0)
    return box[0]


def map_sharded(fn: Callable[[list[T]], Sequence[Any]], items: Sequence[T], *, strided: bool = False) -> list:
    """`fn(items)` computed as `gather(fn(shard(items)))`: same list, split over processes."""
    local = fn(shard(items, strided=strided))
    if len(local) != len(shard_range(len(items), strided=strided)):
        raise RunError("a sharded function must return one result per item")
    return gather(local, strided=strided)


# ----------------------------------------------------------------------------- training


@functools.cache
def accelerator():
    """The accelerate `Accelerator` used for data-parallel training, created on first use.

    Mixed precision is ours, not the config's: `training_autocast` turns bf16 on where
    the device supports it, and scoring stays fp32, whatever `mixed_precision` the
    accelerate config names. `split_batches=True`: a prepared DataLoader's batch is the
    global batch, cut across processes, so 1 and N processes see the same batches.
    """
    from accelerate import Accelerator

    _state()  # make sure the shared state was created with our CPU decision
    return Accelerator(cpu=use_cpu(), mixed_precision="no", split_batches=True)


def prepare(model, optimizer=None, dataloader=None):
    """Wrap for data-parallel training (DDP/FSDP per the accelerate config).

    Returns the prepared objects in the order given, omitting those passed as None.
    With one process they are returned untouched (no wrapper, no device move), so a
    single-process run trains exactly as it did without this module.
    """
    objects = [x for x in (model, optimizer, dataloader) if x is not None]
    if runtime().is_distributed:
        objects = list(accelerator().prepare(*objects))
    return objects[0] if len(objects) == 1 else tuple(objects)


def release() -> None:
    """Drop accelerate's references to prepared models/optimizers (call after each training run).

    The canary trains several arms and seeds; without this every wrapped model would
    stay referenced by the Accelerator until the process ends.
    """
    if runtime().is_distributed:
        accelerator().free_memory()


def unwrap(model):
    """The bare model inside a DDP/FSDP wrapper (for peft's unload, saving, probing)."""
    if not runtime().is_distributed:
        return model
    return accelerator().unwrap_model(model)


def backward(loss) -> None:
    """loss.backward(), through accelerate when processes must sync gradients."""
    if runtime().is_distributed:
        accelerator().backward(loss)
    else:
        loss.backward()


def clip_grad_norm(parameters, max_norm: float):
    """Clip the (already averaged) gradient norm; accelerate's version under FSDP."""
    import torch

    if runtime().is_distributed:
        return accelerator().clip_grad_norm_(parameters, max_norm)
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def data_parallel_loss(mean_loss, n_tokens: int, *, counts: bool = True):
    """(loss to backpropagate, global token mean for logging) so N processes step like one.

    `mean_loss` is this process's token mean over its `n_tokens` supervised tokens (what
    a causal-LM forward returns). DDP averages gradients over processes; when processes
    hold different numbers of tokens, the mean of their means is not the token mean of
    the global batch. Scaling the local token sum by world / (tokens over all processes)
    makes the averaged gradient equal the one-process gradient of the whole batch.
    `counts=False` (a padding row from `shard_batch`) contributes no loss and no tokens.
    With one process the loss is returned as is.
    """
    import torch

    rt = runtime()
    if not rt.is_distributed:
        return mean_loss, mean_loss.detach()
    n_local = float(n_tokens) if counts else 0.0
    local_sum = mean_loss * n_local
    totals = torch.stack([local_sum.detach().reshape(()).float(), torch.tensor(n_local, device=local_sum.device)])
    loss_total, tokens_total = accelerator().reduce(totals, reduction="sum").unbind()
    tokens_total = tokens_total.clamp(min=1.0)
    return local_sum * rt.world_size / tokens_total, loss_total / tokens_total


def sum_over_processes(value: float) -> float:
    """A number summed over every process (token counts, rows): itself for one process."""
    if not runtime().is_distributed:
        return value
    from accelerate.utils import gather_object

    return type(value)(sum(gather_object([value])))


# ----------------------------------------------------------------------------- GPU presets


def bf16_supported(device=None) -> bool:
    """bf16 autocast for training only on a CUDA device that supports it; CPU stays fp32."""
    import torch

    device = runtime().device if device is None else device
    return getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_bf16_supported()


def training_autocast(device=None, *, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast around training forward passes where supported; a no-op elsewhere."""
    import torch

    if enabled and bf16_supported(device):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def scoring_precision() -> Iterator[None]:
    """Scoring in fp32 even inside an outer autocast (probes, signatures, divergence)."""
    import torch

    device_type = "cuda" if runtime().device.type == "cuda" else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def enable_gradient_checkpointing(model, *, when: bool | None = None) -> bool:
    """Trade compute for memory on GPUs (on by default there; off on CPU, where it only slows).

    Non-reentrant checkpointing works with LoRA's frozen inputs and with DDP.
    """
    if when is None:
        when = runtime().device.type == "cuda"
    if not when:
        return False
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        return False
    return True


def check_device_map(device_map: str | None) -> None:
    """A device map spreads one model over every GPU: refused with several processes.

    Under `accelerate launch` each process owns one GPU (data parallel), so a map that
    reaches for all of them would stack N copies of the student on the same devices.
    """
    if device_map is not None and runtime().is_distributed:
        raise UsageError(
            f"--device-map {device_map} needs one process (it spreads one model over all GPUs); "
            "run without accelerate launch, or drop --device-map for data parallelism"
        )


def scoring_load_kwargs(device_map: str | None = None) -> dict:
    """`from_pretrained` keywords for a model that is only scored (never trained).

    fp32 weights always. `device_map="auto"` spreads a student larger than one GPU over
    every visible GPU; it is the default for one process on a multi-GPU machine and is
    refused with several processes (each process then owns one GPU: data parallel).
    """
    import torch

    kwargs: dict = {"dtype": _scoring_dtype()}
    rt = runtime()
    if device_map is None and rt.device.type == "cuda" and not rt.is_distributed and torch.cuda.device_count() > 1:
        device_map = "auto"
    check_device_map(device_map)
    if device_map is not None:
        kwargs["device_map"] = device_map
    return kwargs


# `scan --quantize` names -> bits.
QUANTIZE_BITS = {"4bit": 4, "8bit": 8}


def quantization_config(bits: int | None, *, device=None):
    """A bitsandbytes 4-/8-bit config for the student (QLoRA base), or None for full precision.

    Quantization is bitsandbytes' job (CUDA only); we never quantize by hand. `device`
    is where the weights go (default: this process's device). 4-bit weights are
    dequantized to float32 for each matmul, because the same student is scored
    (probes, signature), which never runs below fp32; training autocasts to bf16 anyway.
    """
    if not bits:
        return None
    if bits not in QUANTIZE_BITS.values():
        raise UsageError(f"--quantize: expected {' or '.join(QUANTIZE_BITS)}, got {bits} bits")
    import importlib.util

    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(
            f"--quantize {bits}bit needs the bitsandbytes package and a CUDA GPU",
            hint="pip install bitsandbytes; or drop --quantize to load the student in full precision",
        )
    target = torch.device(device) if device is not None else runtime().device
    if target.type != "cuda":
        raise ModelError(
            f"--quantize {bits}bit needs a CUDA GPU (bitsandbytes); this run is on {target} "
            "(pass --device cuda, or drop --quantize)"
        )
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=_scoring_dtype(),
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def quantized_bits(model) -> int | None:
    """4 or 8 for a model bitsandbytes loaded in 4 or 8 bits (transformers marks it), else None."""
    for bits in (4, 8):
        if getattr(model, f"is_loaded_in_{bits}bit", False):
            return bits
    return None


def prepare_quantized_for_training(model):
    """peft's preparation of a 4-/8-bit base for LoRA (fp32 norms, input grads)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=runtime().device.type == "cuda")


def run_with_batch_backoff(fn: Callable[[int], T], batch_size: int, *, label: str = "batch") -> T:
    """Call `fn(batch_size)`; after an out-of-memory error retry with halved batch sizes.

    The first call runs as is (no cache clearing, no garbage collection, so the common
    case costs nothing). On an out-of-memory error accelerate takes over: its
    `find_executable_batch_size` recognizes CUDA, MPS and CPU allocator errors, frees
    the device cache and retries. Use it where the batch size does not change the
    result (scoring); training keeps its global batch.
    """
    from accelerate.utils import find_executable_batch_size
    from accelerate.utils.memory import should_reduce_batch_size

    from distill_audit import ui

    try:
        return fn(int(batch_size))
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is an out-of-memory error
        if not should_reduce_batch_size(exc):
            raise
    size = {"now": int(batch_size)}

    def halve() -> int:
        size["now"] //= 2
        if size["now"] >= 1:
            ui.warn(f"out of memory: retrying {label} with batch size {size['now']}")
        return size["now"]

    try:
        return find_executable_batch_size(fn, starting_batch_size=halve(), reduce_batch_size_fn=halve)()
    except RuntimeError as exc:
        if "No executable batch size found" in str(exc):
            raise RunError(
                f"out of memory even with {label} size 1 (try a smaller model, --max-length, or a GPU)"
            ) from None
        raise
