"""The neutral reference: an input the signature, the static comparison and the canary share.

A user file (`--reference`), or the student base answering the data's own prompts.
The self-generated answers are made the way the data was: system messages are
dropped first (scoring drops them too, and a trait system prompt left in would make
the reference carry the very signal it is there to cancel), decoding follows the
data's provenance (or the report says it was unknown and what that risks), and the
answers get room for the data's longest completion.
"""

from __future__ import annotations

import random
from typing import Any

from distill_audit import distributed
from distill_audit.ingest.records import Sample
from distill_audit.scan.context import dataset_dict, decoding_from_provenance, samples_fingerprint
from distill_audit.scan.stage import Stage, StagePlan, StageResult, StageRun

DEFAULT_DECODING = {"temperature": 1.0, "top_p": 1.0}
UNKNOWN_DECODING = (
    "the data's provenance records no decoding settings, so the reference was sampled at temperature 1.0: "
    "if the data was decoded otherwise (greedy, another temperature) the two differ in form, which moves "
    "every prompt's shift together"
)


def user_turns(sample: Sample) -> list[dict[str, str]]:
    """The prompt without its system messages."""
    return [dict(m) for m in sample.prompt if m.get("role") != "system"]


def reference_rows(ctx) -> int:
    """How many of the data's prompts the later stages need a neutral answer for."""
    from distill_audit.scan.stages.canary import CanaryStage

    sig_cfg, can_cfg, _ = ctx.configs
    canary_runs = CanaryStage().skip_reason(ctx) is None and ctx.user_control is None
    return max(sig_cfg.max_rows if not ctx.opts.skip_signature else 0, int(can_cfg.sample) if canary_runs else 0)


def max_completion_tokens(tokenizer, samples: list[Sample]) -> int:
    """Room for the longest data completion (+25%), so reference answers are not cut shorter than the data."""
    longest = max((len(tokenizer(s.completion, add_special_tokens=False)["input_ids"]) for s in samples), default=32)
    return max(8, int(longest * 1.25) + 2)


def constraint(tokenizer, constrain: str | None):
    """The generator's number-list grammar when the data was made with it (or is number lists)."""
    if constrain != "numbers":
        return None
    from distill_audit.generate.constrained import number_list_processor

    return number_list_processor(tokenizer)


class ReferenceStage(Stage):
    name = "reference"
    title = "neutral reference"
    evidence = False

    def _needed(self, ctx) -> bool:
        return reference_rows(ctx) > 0

    def skip_reason(self, ctx) -> str | None:
        if ctx.user_reference is not None:
            return None
        return None if self._needed(ctx) else "no stage needs a self-generated reference"

    def _rows(self, ctx) -> list[Sample]:
        rows = list(ctx.ds.samples)
        n = reference_rows(ctx)
        if len(rows) > n:
            rows = sorted(random.Random(ctx.seeds["reference"]).sample(rows, n), key=lambda s: s.index)
        return rows

    def _decoding(self, ctx) -> tuple[dict[str, Any], str]:
        given = decoding_from_provenance(ctx.ds)
        source = "provenance" if {"temperature"} <= set(given) else "unknown"
        decoding: dict[str, Any] = {**DEFAULT_DECODING, **given}
        prov = ctx.ds.provenance
        decoding["constrain"] = (
            (prov.get("constrain") or [None])[0]
            if "constrain" in prov
            else ("numbers" if ctx.kind == "numbers" else None)
        )
        decoding.setdefault("max_new_tokens", None)  # from the data's completion lengths once the tokenizer is loaded
        return decoding, source

    def cache_key(self, ctx) -> dict[str, Any] | None:
        if ctx.user_reference is not None:
            return None  # a file: nothing to compute
        decoding, _ = self._decoding(ctx)
        return {
            "models": {"student": ctx.student_key},
            "data": ctx.data_key,
            "config": {
                "decoding": decoding,
                "kind": ctx.kind,
                "rows": [s.index for s in self._rows(ctx)],
                "system": "stripped",
            },
        }

    def run(self, ctx) -> StageRun:
        if ctx.user_reference is not None:
            ds = ctx.user_reference
            info = dataset_dict(ds, None, origin="file")
            return StageRun(
                StageResult("ok", None, [], {"origin": "file", "n": len(ds)}),
                outputs={"samples": ds.samples, "fingerprint": ds.fingerprint, "dataset": info, "origin": "file"},
            )
        from distill_audit.lm.sampler import sample_completions

        rows = self._rows(ctx)
        decoding, source = self._decoding(ctx)
        loaded = ctx.lazy.get()
        max_new = decoding["max_new_tokens"] or max_completion_tokens(loaded.tokenizer, rows)
        # Each process answers a shard of the prompts; row_ids keep each row's random stream
        # what it is in one process, and every process gets all answers back in order.
        local = distributed.shard(rows)
        texts = distributed.gather(
            sample_completions(
                loaded.model,
                loaded.tokenizer,
                [user_turns(s) for s in local],
                max_new_tokens=max_new,
                temperature=decoding["temperature"],
                top_p=decoding["top_p"],
                seed=ctx.seeds["reference"],
                logits_processor=constraint(loaded.tokenizer, decoding["constrain"]),
                progress_label="reference (student answers the data's prompts)",
                row_ids=[s.index for s in local],
            )
        )
        limits = ["self-generated by the student base: traits the student already holds are not visible against it"]
        if source == "unknown":
            limits.append(UNKNOWN_DECODING)
        if any(s.system_prompt for s in rows):
            limits.append("the data's system messages were dropped before the student answered its prompts")
        body = {
            "origin": "self-generated",
            "n": len(texts),
            "decoding": {**decoding, "max_new_tokens": max_new},
            "decoding_source": source,
            "completions": texts,
        }
        return self._finish(ctx, StageResult("ok", None, limits, body), rows)

    def _finish(self, ctx, result: StageResult, rows: list[Sample]) -> StageRun:
        texts = result.body.pop("completions")
        samples = [
            Sample(index=s.index, line=None, prompt=s.prompt, completion=text, meta={"origin": "self-generated"})
            for s, text in zip(rows, texts)
        ]
        fp = samples_fingerprint(samples)
        info = {
            "source": f"self-generated by {ctx.student['name'] or ctx.student['ref']}",
            "origin": "self-generated",
            "format": None,
            "schema": None,
            "fingerprint": fp,
            "n_rows_total": len(samples),
            "n_samples": len(samples),
            "n_skipped": 0,
            "skipped_by_reason": {},
            "sampled_from": None,
            "provenance": {"decoding": result.body["decoding"], "decoding_source": result.body["decoding_source"]},
            "kind": None,
        }
        return StageRun(
            result,
            outputs={
                "samples": samples,
                "fingerprint": fp,
                "dataset": info,
                "origin": "self-generated",
                "completions": texts,
            },
        )

    def to_cache(self, run: StageRun) -> dict[str, Any]:
        if run.outputs.get("origin") == "file":  # never cached (no key); the runner still round-trips it
            return {"result": run.result.to_dict(), "file": True}
        return {"result": run.result.to_dict(), "completions": run.outputs["completions"]}

    def from_cache(self, payload: dict[str, Any], ctx) -> StageRun:
        if payload.get("file"):
            return self.run(ctx)  # a file reference: reading it back is the whole computation
        result = StageResult.from_dict(payload["result"])
        result.body["completions"] = payload["completions"]
        return self._finish(ctx, result, self._rows(ctx))

    def plan(self, ctx, speed) -> StagePlan:
        if ctx.user_reference is not None:
            return StagePlan(self.name, False, "user reference file")
        reason = self.skip_reason(ctx)
        if reason:
            return StagePlan(self.name, False, reason)
        n, max_new = len(self._rows(ctx)), speed.get("max_new_tokens") or 0
        tokens = n * max_new
        gen = speed.get("sample_tokens_per_s")
        return StagePlan(
            self.name,
            True,
            f"the student answers {n} of the data's prompts (≤ {max_new} new tokens each)",
            tokens,
            tokens / gen if gen else None,
        )
