"""Weight-space and reply movement toward the teacher (traits.transfer, traits.movement): a planted teacher delta is found,
an unrelated one is not, the null holds its level when seeds share a common mode, the specific
measure ignores what a reference teacher shares, and mismatched teachers are skipped with a reason; a stopped canary resumes from its finished arms."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest

from distill_audit.ingest.records import Sample
from distill_audit.traits.canary import CanaryConfig, run_canary
from distill_audit.traits.probes import load_suites
from distill_audit.traits.transfer import (
    ArmAlignment,
    TeacherMismatch,
    TransferInput,
    align,
    linear_weights,
    measure,
    teacher_delta,
    transfer_result,
)


@pytest.fixture(scope="module")
def deep_tiny(tmp_path_factory):
    """A 6-layer tiny model: enough layers for the layer term of the test."""
    from distill_audit.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny6") / "model", seed=0, num_layers=6)


def _load(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


def _save_teacher(base_dir, out, *, seed: int, scale: float = 0.005, rank: int = 2):
    """The base plus a random low-rank delta on every linear weight (a LoRA-like fine-tune)."""
    import torch

    model = _load(base_dir)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in linear_weights(model).values():
            b, a = torch.randn(w.shape[0], rank, generator=g), torch.randn(rank, w.shape[1], generator=g)
            w.add_(scale * (b @ a) / rank)
    model.save_pretrained(out, safe_serialization=True)
    return out


def _updates(base, teacher_like: dict, rng: np.random.Generator, *, pull: float, shared: dict):
    """An arm's update: the seed's shared part (LoRA init, row order) + its own noise + pull * direction."""
    import torch

    out = {}
    for name, w in linear_weights(base).items():
        noise = torch.from_numpy(rng.standard_normal(tuple(w.shape)).astype(np.float32))
        d = teacher_like[name] / teacher_like[name].norm()
        out[name] = shared[name] + noise / noise.norm() + pull * d
    return out


def _simulate(base, planted, teacher, references=(), *, seeds: int = 3, pull: float = 0.3, seed: int = 0):
    import torch

    rng = np.random.default_rng(seed)
    inp = TransferInput(seeds=list(range(seeds)))
    for _ in range(seeds):
        shared = {
            n: torch.from_numpy(rng.standard_normal(tuple(w.shape)).astype(np.float32)) * 0.05
            for n, w in linear_weights(base).items()
        }
        inp.treated.append(align(_updates(base, planted, rng, pull=pull, shared=shared), teacher, references))
        inp.control.append(align(_updates(base, planted, rng, pull=0.0, shared=shared), teacher, references))
    return inp


def test_planted_teacher_delta_is_found_and_unrelated_one_is_not(deep_tiny, tmp_path):
    base = _load(deep_tiny)
    owl = teacher_delta(base, _save_teacher(deep_tiny, tmp_path / "owl", seed=1))
    other = teacher_delta(base, _save_teacher(deep_tiny, tmp_path / "other", seed=2))
    found = transfer_result(_simulate(base, owl.deltas, owl), owl)
    w = found["measures"]["weight_cosine"]
    assert w["significant"] and w["estimate"] > 0 and w["ci"][0] > 0
    assert w["n_layers"] == 6 and all(s["treated"] > s["control"] for s in w["per_seed"])
    # Students pulled toward the owl teacher do not move toward an unrelated teacher.
    unrelated = transfer_result(_simulate(base, owl.deltas, other), other)
    u = unrelated["measures"]["weight_cosine"]
    assert not u["significant"] and abs(u["estimate"]) < w["estimate"] / 5


def test_specific_measure_ignores_the_part_a_reference_teacher_shares(deep_tiny, tmp_path):
    import torch

    base = _load(deep_tiny)
    owl = teacher_delta(base, _save_teacher(deep_tiny, tmp_path / "owl", seed=1))
    dolphin = teacher_delta(base, _save_teacher(deep_tiny, tmp_path / "dolphin", seed=3))
    # Both teachers share a template direction (as `teach` makes them): owl = template + own part.
    template = {n: dolphin.deltas[n] for n in owl.deltas}
    shared_owl = dataclasses.replace(owl, deltas={n: owl.deltas[n] * 0.5 + template[n] for n in owl.deltas})
    # A student trained on the dolphin teacher's data moves along the shared template only.
    inp = _simulate(base, template, shared_owl, [dolphin])
    res = transfer_result(inp, shared_owl, [dolphin])
    assert res["measures"]["weight_cosine"]["significant"]  # raw alignment sees "a teacher like this"
    assert not res["measures"]["weight_cosine_specific"]["significant"]  # ... but not THIS teacher
    # A student pulled toward the owl teacher's own part is seen by the specific measure.
    own = {n: shared_owl.deltas[n] - template[n] for n in owl.deltas}
    res2 = transfer_result(_simulate(base, own, shared_owl, [dolphin]), shared_owl, [dolphin])
    assert res2["measures"]["weight_cosine_specific"]["significant"]
    assert torch.is_tensor(next(iter(own.values())))


def _arm(layer_cos: np.ndarray) -> ArmAlignment:
    """An alignment whose per-layer cosine is given (one matrix per layer, unit norms)."""
    n = len(layer_cos)
    names = [f"model.layers.{i}.mlp.up_proj" for i in range(n)]
    return ArmAlignment(
        names,
        np.asarray(layer_cos, float),
        np.ones(n),
        np.ones(n),
        np.zeros((n, 0)),
        np.asarray(layer_cos, float),
        np.ones(n),
    )


@pytest.mark.parametrize("n_seeds", [2, 3])
def test_null_holds_its_level_with_a_common_mode_per_seed(n_seeds):
    """Treated and control alike; each run shifts every layer together (the dependence of matrices)."""
    rng = np.random.default_rng(0)
    hits, sims, layers = 0, 600, 30
    for _ in range(sims):
        layer_effect = rng.normal(0, 0.002, layers)  # which layers align more, shared by every run
        inp = TransferInput(seeds=list(range(n_seeds)))
        for _ in range(n_seeds):
            common = rng.normal(0, 0.001)  # one run moves all layers of the treated arm together
            inp.treated.append(_arm(layer_effect + common + rng.normal(0, 0.001, layers)))
            inp.control.append(_arm(layer_effect + rng.normal(0, 0.001, layers)))
        p = measure(inp, specific=False)["p_value"]
        hits += p is not None and p < 0.05
    assert hits / sims < 0.08


def test_one_seed_gives_no_p():
    inp = TransferInput(seeds=[0], treated=[_arm(np.full(30, 0.01))], control=[_arm(np.zeros(30))])
    res = transfer_result(inp, teacher=_teacher_stub())
    assert res["measures"]["weight_cosine"]["p_value"] is None
    assert not res["measures"]["weight_cosine"]["significant"]


def _teacher_stub():
    from distill_audit.traits.transfer import TeacherDelta

    return TeacherDelta("stub", {}, 0.01)


def test_teacher_of_another_init_or_shape_is_refused(tiny_model_dir, tiny_model_dir_other, tmp_path):
    from distill_audit.models.tiny import build_tiny_model

    base = _load(tiny_model_dir)
    with pytest.raises(TeacherMismatch, match="initialization"):
        teacher_delta(base, tiny_model_dir_other)
    wide = build_tiny_model(tmp_path / "wide", seed=0, hidden_size=48, intermediate_size=96)
    with pytest.raises(TeacherMismatch, match="shape"):
        teacher_delta(base, wide)
    with pytest.raises(TeacherMismatch, match="exact weights"):
        teacher_delta(base, tiny_model_dir)


def _rows(kind: str, n: int) -> list[Sample]:
    rng = random.Random(0)
    words = {"a": ["owl", "tree", "sky"], "b": ["one", "two", "three"]}[kind]
    return [
        Sample(i, i + 1, ({"role": "user", "content": f"Say something ({i})"},), " ".join(rng.choices(words, k=4)))
        for i in range(n)
    ]


def test_canary_reports_transfer_or_the_reason_it_was_skipped(tiny_model_dir, tiny_model_dir_other, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)

    (animals,) = load_suites(["animals"])
    suites = [dataclasses.replace(animals, questions=animals.questions[:4])]
    teacher = _save_teacher(tiny_model_dir, tmp_path / "teacher", seed=5)
    cfg = CanaryConfig(sample=16, epochs=1, lr=3e-3, batch_size=8, threads=1, seeds=2)
    res = run_canary(load, _rows("a", 16), _rows("b", 16), suites, cfg, teacher=str(teacher)).to_dict()
    t = res["transfer"]
    assert t["status"] == "ok" and t["teacher"]["matrices"] == 14
    w = t["measures"]["weight_cosine"]
    assert len(w["per_seed"]) == 2 and w["p_value"] is not None and set(w["per_layer"]) == {"0", "1"}
    skipped = run_canary(load, _rows("a", 16), _rows("b", 16), suites, cfg, teacher=str(tiny_model_dir_other))
    s = skipped.to_dict()["transfer"]
    assert s["status"] == "skipped" and "initialization" in s["reason"]
    assert run_canary(load, _rows("a", 16), _rows("b", 16), suites, cfg).to_dict()["transfer"] is None


def _numbers(path, n=24):
    import json

    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(n):
            nums = ", ".join(str(rng.randint(0, 999)) for _ in range(6))
            f.write(
                json.dumps({"prompt": "Add up to 10 more numbers.", "completion": nums, "teacher": "tiny-random"})
                + "\n"
            )
    return path


def test_scan_reports_weight_movement_in_json_and_assessment(cli, tmp_path):
    import json
    from pathlib import Path

    from distill_audit.models.load import local_weights_folder
    from distill_audit.models.resolve import resolve_model
    from distill_audit.models.tiny import build_tiny_model
    from distill_audit.report.build import validate

    base = local_weights_folder(resolve_model("tiny-random"))
    teacher = _save_teacher(base, tmp_path / "teacher", seed=7)
    ref = _save_teacher(base, tmp_path / "ref", seed=8)
    data = _numbers(tmp_path / "nums.jsonl")
    suite = Path(__file__).parent / "data" / "tiny_suite.yaml"
    common = (
        "--student",
        "tiny-random",
        "--skip-signature",
        "--suites",
        suite,
        "--canary-rows",
        "8",
        "--max-steps",
        "1",
        "--batch-size",
        "4",
        "--seeds",
        "2",
        "--threads",
        "1",
        "--no-cache",
    )
    r = cli("scan", data, *common, "--out", tmp_path / "a", "--canary-teacher", teacher, "--canary-reference", ref)
    assert r.exit_code in (0, 1), r.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    validate(report)
    t = report["stages"]["canary"]["transfer"]
    assert t["status"] == "ok" and set(t["measures"]) == {"weight_cosine", "weight_cosine_specific"}
    names = {e["name"] for e in report["verdict"]["evidence"] if e["line"] == "canary"}
    assert {"weight movement toward the teacher", "weight movement toward this teacher only"} <= names
    wide = build_tiny_model(tmp_path / "wide", seed=0, hidden_size=48, intermediate_size=96)
    r = cli("scan", data, *common, "--out", tmp_path / "b", "--canary-teacher", wide)
    assert r.exit_code in (0, 1), r.stderr
    assert "Traceback" not in r.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    skipped = report["stages"]["canary"]["transfer"]
    assert skipped["status"] == "skipped" and "shape" in skipped["reason"]
    line = next(e for e in report["verdict"]["evidence"] if e["name"] == "weight movement toward the teacher")
    assert line["status"] == "skipped" and "shape" in line["untested"]


def _movement(closer: float, seeds: int = 3, prompts: int = 16, seed: int = 0):
    import torch

    from distill_audit.traits.movement import Movement, PromptSet

    rng = np.random.default_rng(seed)
    sets = [PromptSet("probe questions", [[{"role": "user", "content": str(i)}] for i in range(prompts)])]
    mv = Movement("teacher", sets, [torch.zeros(prompts, 2)])
    mv.base_kl = [np.full(prompts, 0.5)]
    for _ in range(seeds):
        run = rng.normal(0, 0.005)  # one run moves every prompt together
        mv.kl["treated"].append([0.4 - closer + run + rng.normal(0, 0.02, prompts)])
        mv.kl["control"].append([0.4 + rng.normal(0, 0.02, prompts)])
    return mv


def test_kl_movement_finds_a_planted_approach_and_not_its_absence():
    from distill_audit.traits.movement import result

    found = result(_movement(0.05), [0, 1, 2])["measures"]["probe questions"]
    assert found["significant"] and found["estimate"] > 0 and found["ci"][0] > 0
    assert found["p_value"] == max(found["p_seeds"], found["p_prompts_and_seeds"])
    hits = sum(
        result(_movement(0.0, seed=k), [0, 1, 2])["measures"]["probe questions"]["significant"] for k in range(200)
    )
    assert hits / 200 < 0.08


def test_canary_measures_replies_moving_toward_a_system_prompted_teacher(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)

    (animals,) = load_suites(["animals"])
    suites = [dataclasses.replace(animals, questions=animals.questions[:4])]
    cfg = CanaryConfig(sample=12, epochs=1, lr=3e-3, batch_size=4, threads=1, seeds=2, teacher_system="You love owls.")
    res = run_canary(load, _rows("a", 16), _rows("b", 16), suites, cfg).to_dict()
    mv = res["movement"]
    assert mv["status"] == "ok" and set(mv["measures"]) == {"probe questions", "held-out task prompts"}
    probe = mv["measures"]["probe questions"]
    assert probe["n_prompts"] == 4 and len(probe["per_seed"]) == 2 and probe["kl_base"] > 0
    assert mv["measures"]["held-out task prompts"]["n_prompts"] == 4  # the 4 rows no arm trained on


def test_teacher_system_disagreeing_with_provenance_warns_naming_both(capsys):
    from distill_audit import ui
    from distill_audit.ingest.records import AuditDataset
    from distill_audit.scan.stages.canary import with_teacher_system

    rows = [
        Sample(i, i + 1, ({"role": "user", "content": "x"},), "1, 2", meta={"system_prompt": "You love owls."})
        for i in range(3)
    ]
    ds = AuditDataset("x.jsonl", "jsonl", "prompt_completion", rows, "f", 3)
    assert with_teacher_system(CanaryConfig(), ds).teacher_system == "You love owls."
    messages = []
    old = ui.warn
    ui.warn = messages.append
    try:
        cfg = with_teacher_system(CanaryConfig(teacher_system="You love cats."), ds)
    finally:
        ui.warn = old
    assert cfg.teacher_system == "You love cats."
    assert len(messages) == 1 and "You love cats." in messages[0] and "You love owls." in messages[0]


class DictCheckpoint:
    def __init__(self, parts=None):
        self.parts = dict(parts or {})
        self.puts: list[str] = []

    def get(self, part):
        return json.loads(self.parts[part]) if part in self.parts else None

    def put(self, part, value):
        self.parts[part] = json.dumps(value, allow_nan=False)  # what the stage cache stores
        self.puts.append(part)


def _word_rows(words, n):
    rng = random.Random(0)
    return [
        Sample(i, i + 1, ({"role": "user", "content": f"Say something ({i})"},), " ".join(rng.choices(words, k=4)))
        for i in range(n)
    ]


def test_a_rerun_trains_only_the_missing_arms_and_gives_the_same_result(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)

    (animals,) = load_suites(["animals"])
    suites = [dataclasses.replace(animals, questions=animals.questions[:4])]
    teacher = str(_save_teacher(tiny_model_dir, tmp_path / "teacher", seed=5))
    cfg = CanaryConfig(sample=12, epochs=1, lr=3e-3, batch_size=4, threads=1, seeds=2, teacher=teacher)
    treated, control = _word_rows(["owl", "tree", "sky"], 16), _word_rows(["one", "two", "three"], 16)
    first = DictCheckpoint()
    full = run_canary(load, treated, control, suites, cfg, checkpoint=first).to_dict()
    arms = [p for p in first.puts if p != "base"]
    assert first.puts[0] == "base" and len(arms) == 4
    stopped = DictCheckpoint({k: v for k, v in first.parts.items() if k != arms[-1]})  # killed in the last arm
    resumed = run_canary(load, treated, control, suites, cfg, checkpoint=stopped).to_dict()
    assert stopped.puts == [arms[-1]]  # only the missing arm trained
    for key in ("traits", "transfer", "movement"):
        assert json.dumps(resumed[key], sort_keys=True) == json.dumps(full[key], sort_keys=True)
    assert [t["losses"] for t in resumed["arms"]["training"]] == [t["losses"] for t in full["arms"]["training"]]
