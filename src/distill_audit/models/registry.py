"""Lineage tier 1: the curated registry of shared initializations (data in registry.yaml).

It lives in models/ because name resolution needs it too (a closed model's vendor);
the lineage check reads it from here, so lineage depends on models and not back.

Each open family lists one initialization per size, with the fine-tunes and continued
pretrainings that start from it; closed vendors are matched by name pattern, and the
few closed models known to share an initialization (GPT-4.1 / GPT-4o, per Cloud et
al. 2025) are grouped. Partial lineages (pruned, upscaled, upcycled, or likely the
same base) are relations that can only give `possible-shared-init`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import yaml

from distill_audit.errors import RunError
from distill_audit.models.names import normalize_name

SHARING_RELATIONS = {"pruned-from", "upscaled-from", "upcycled-from", "likely-same-base"}


@dataclass(frozen=True)
class RegistryEntry:
    key: str  # the normalized name that was looked up
    vendor: str
    open_weights: bool
    init_id: str | None  # one pretrained initialization; None when only the vendor is known
    family: str | None
    from_scratch: bool
    evidence: tuple[str, ...]
    exact: bool  # listed by name (not only matched by a vendor pattern)

    def display_name(self, ref: str) -> str:
        return ref.strip()

    def describe(self) -> str:
        how = "listed" if self.exact else "vendor name pattern"
        where = f"init {self.init_id}" if self.init_id else f"vendor {self.vendor}"
        return f"{self.key}: {where} ({how})"


@dataclass(frozen=True)
class RegistryFinding:
    verdict: str  # same-init | possible-shared-init | same-family-different-init | different-init | unknown
    confidence: str  # high | medium | low
    reason: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class _Member:
    init_id: str
    family: str
    vendor: str
    open_weights: bool
    from_scratch: bool
    evidence: tuple[str, ...]


class Registry:
    def __init__(self, data: dict):
        self.members: dict[str, _Member] = {}
        self.relations: dict[frozenset, tuple[str, str]] = {}
        self.closed_patterns: list[tuple[str, str, str]] = []  # (pattern, vendor, evidence)
        self.open_patterns: list[tuple[str, str]] = []
        self.hub_aliases: dict[str, str] = {}  # short alias -> Hugging Face id (families' `hub:` maps)
        for family in data.get("families", []):
            self._add_family(family)
        for vendor in data.get("closed", []):
            self._add_closed(vendor)
        for rel in data.get("relations", []):
            a, b = self._init_of(rel["a"]), self._init_of(rel["b"])
            if rel["kind"] not in SHARING_RELATIONS:
                raise RunError(f"registry.yaml: unknown relation kind {rel['kind']!r}")
            self.relations[frozenset((a, b))] = (rel["kind"], f"{rel['a']} {rel['kind']} {rel['b']}: {rel['evidence']}")
        for vendor in data.get("vendors", []):
            self.open_patterns += [(p, vendor["vendor"]) for p in vendor["patterns"]]

    # -- building -------------------------------------------------------------------------

    def _put(self, name: str, member: _Member) -> None:
        key = normalize_name(name)
        if key in self.members and self.members[key].init_id != member.init_id:
            raise RunError(f"registry.yaml: {name} is listed under two initializations")
        self.members[key] = member

    def _add_family(self, fam: dict) -> None:
        evidence = fam["evidence"]
        for size in fam["sizes"]:
            size = str(size)
            init_id = f"{fam['family']}:{size}"
            base = dict(
                family=fam["family"],
                vendor=fam["vendor"],
                open_weights=fam.get("open_weights", True),
                from_scratch=bool(fam.get("from_scratch", False)),
            )
            for i, template in enumerate(fam["names"]):
                extra = (fam["member_evidence"],) if i > 0 and fam.get("member_evidence") else ()
                self._put(template.format(size=size), _Member(init_id=init_id, evidence=(evidence, *extra), **base))
            for item in (fam.get("extra") or {}).get(size, []) or []:
                name, why = (item, None) if isinstance(item, str) else (item["name"], item.get("evidence"))
                self._put(name, _Member(init_id=init_id, evidence=(evidence, *([why] if why else [])), **base))

        for alias, hub_id in (fam.get("hub") or {}).items():
            member = self.members.get(normalize_name(hub_id))
            if member is None or member.family != fam["family"]:
                raise RunError(f"registry.yaml: hub alias {alias} -> {hub_id} is not a {fam['family']} model")
            self.hub_aliases[str(alias).lower()] = str(hub_id)

    def _add_closed(self, vendor: dict) -> None:
        self.closed_patterns += [(p, vendor["vendor"], vendor["evidence"]) for p in vendor["patterns"]]
        for group in vendor.get("groups", []) or []:
            init_id = f"{vendor['vendor']}:{group['members'][0]}"
            why = (vendor["evidence"], *([group["evidence"]] if group.get("evidence") else []))
            for name in group["members"]:
                self._put(name, _Member(init_id, init_id, vendor["vendor"], False, False, why))

    def _init_of(self, name: str) -> str:
        member = self.members.get(normalize_name(name))
        if member is None:
            raise RunError(f"registry.yaml: relation names {name}, which is not listed")
        return member.init_id

    # -- queries --------------------------------------------------------------------------

    def lookup(self, name: str) -> RegistryEntry | None:
        key = normalize_name(name)
        member = self.members.get(key)
        if member is not None:
            return RegistryEntry(
                key,
                member.vendor,
                member.open_weights,
                member.init_id,
                member.family,
                member.from_scratch,
                member.evidence,
                exact=True,
            )
        for pattern, vendor, evidence in self.closed_patterns:
            if fnmatch.fnmatchcase(key, pattern):
                return RegistryEntry(key, vendor, False, None, None, False, (evidence,), exact=False)
        for pattern, vendor in self.open_patterns:
            if fnmatch.fnmatchcase(key, pattern):
                return RegistryEntry(key, vendor, True, None, None, False, (), exact=False)
        return None

    def compare(self, a: RegistryEntry | None, b: RegistryEntry | None, names: tuple[str, str]) -> RegistryFinding:
        """What the registry alone says about a pair (see docs/lineage.md for the rules)."""
        missing = [n for n, e in zip(names, (a, b)) if e is None]
        if missing:
            return RegistryFinding("unknown", "low", f"not in the lineage registry: {', '.join(missing)}", ())
        assert a is not None and b is not None
        evidence = tuple(dict.fromkeys((a.describe(), b.describe(), *a.evidence, *b.evidence)))
        both_listed = a.exact and b.exact
        if a.init_id and a.init_id == b.init_id:
            return RegistryFinding("same-init", "high", f"both descend from one initialization ({a.init_id})", evidence)
        if a.init_id and b.init_id:
            rel = self.relations.get(frozenset((a.init_id, b.init_id)))
            if rel is not None:
                kind, line = rel
                return RegistryFinding(
                    "possible-shared-init",
                    "medium",
                    f"partial lineage ({kind}): weights may be derived",
                    (*evidence, line),
                )
        if a.vendor != b.vendor:
            confidence = "high" if both_listed else "medium"
            return RegistryFinding(
                "different-init",
                confidence,
                f"different developers ({a.vendor} vs {b.vendor}) and no known shared lineage",
                evidence,
            )
        if not (a.init_id and b.init_id):
            return RegistryFinding(
                "unknown",
                "low",
                f"same developer ({a.vendor}); whether these share an initialization is not public",
                evidence,
            )
        if a.family == b.family:
            return RegistryFinding(
                "same-family-different-init",
                "high",
                f"same family ({a.family}), separately pretrained initializations ({a.init_id} vs {b.init_id})",
                evidence,
            )
        if a.from_scratch or b.from_scratch:
            fresh = a.family if a.from_scratch else b.family
            return RegistryFinding(
                "same-family-different-init",
                "medium",
                f"same developer ({a.vendor}); {fresh} was pretrained from scratch",
                evidence,
            )
        return RegistryFinding(
            "unknown",
            "low",
            f"same developer ({a.vendor}), different releases ({a.family}, {b.family}); not documented whether one "
            "continues the other",
            evidence,
        )


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    text = files("distill_audit.models").joinpath("registry.yaml").read_text(encoding="utf-8")
    return Registry(yaml.safe_load(text))
