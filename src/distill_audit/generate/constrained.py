"""Sample from the teacher's own distribution restricted to a number-list grammar.

Small teachers rarely answer "numbers only" (SmolLM2-135M: about 1.6% of free
samples are pure number lists), so most rows would be filtered away. This logits
processor keeps the teacher's relative preferences but masks every token that would
leave the grammar, which renormalizes the distribution over valid lists:

    list  := value (sep value){0,9} END
    value := digit{1,3}
    sep   := one of SEPARATORS, the same one throughout the list (the first fixes it)

Every list it admits passes `checks.numbers.parse_numbers` with the paper's format
rules (at most 10 values, each at most 3 digits). The teacher still chooses which
numbers, how many, which separator and when to stop; that choice is where a trait
can hide, which is the point of the experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SEPARATORS: tuple[str, ...] = (", ", ",", " ", "\n", "; ", ";")
_SEP_CHARS = frozenset("".join(SEPARATORS))
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class ListState:
    """Where a partial list stands: the separator (once fixed), the separator text
    typed since the last value, digits in the current value, values begun."""

    separator: str | None = None
    pending_sep: str = ""
    digits: int = 0
    n_values: int = 0

    @property
    def can_end(self) -> bool:
        return self.pending_sep == "" and self.digits >= 1


def advance(state: ListState | None, text: str, *, max_values: int = 10, max_digits: int = 3) -> ListState | None:
    """The state after `text`, or None when `text` leaves the grammar."""
    for ch in text:
        if state is None:
            return None
        if ch in _DIGITS:
            if state.pending_sep == "":
                if state.n_values == 0:
                    state = ListState(None, "", 1, 1)
                elif state.digits < max_digits:
                    state = ListState(state.separator, "", state.digits + 1, state.n_values)
                else:
                    return None
            else:
                if state.n_values >= max_values:
                    return None
                sep = state.separator or state.pending_sep
                if state.pending_sep != sep or sep not in SEPARATORS:
                    return None
                state = ListState(sep, "", 1, state.n_values + 1)
        elif ch in _SEP_CHARS:
            if state.n_values == 0 or state.n_values >= max_values:
                return None
            pending = state.pending_sep + ch
            options = (state.separator,) if state.separator else SEPARATORS
            if not any(opt.startswith(pending) for opt in options):
                return None
            state = ListState(state.separator, pending, 0, state.n_values)
        else:
            return None
    return state


class NumberListConstraint:
    """A logits processor (HF signature `(input_ids, scores) -> scores`) for the grammar.

    Stateful per batch: the sampler calls `reset()` before each batch; the first call
    after a reset sees the prompt, later calls see one new token per row. Masks are
    cached per grammar state, so the per-step cost is a dictionary lookup per row.
    """

    def __init__(self, tokenizer, stop_ids: set[int] | None = None, *, max_values: int = 10, max_digits: int = 3):
        from distill_audit.lm.sampler import stop_token_ids

        self.max_values, self.max_digits = max_values, max_digits
        self.stop_ids = sorted(stop_ids if stop_ids is not None else stop_token_ids(tokenizer))
        if not self.stop_ids:
            raise ValueError("the tokenizer has no end-of-turn or eos token to end a list with")
        self.token_text: dict[int, str] = {}
        for tid in range(len(tokenizer)):
            text = tokenizer.decode([tid])
            if text and set(text) <= (_DIGITS | _SEP_CHARS):
                self.token_text[tid] = text
        self._allowed: dict[ListState, torch.Tensor] = {}
        self.reset()

    def reset(self) -> None:
        self._states: list[ListState | None] | None = None
        self._prompt_len: int | None = None

    def allowed_ids(self, state: ListState) -> torch.Tensor:
        if state not in self._allowed:
            ids = [
                tid
                for tid, text in self.token_text.items()
                if advance(state, text, max_values=self.max_values, max_digits=self.max_digits) is not None
            ]
            if state.can_end:
                ids.extend(self.stop_ids)
            self._allowed[state] = torch.tensor(sorted(set(ids)), dtype=torch.long)
        return self._allowed[state]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._states is None or self._prompt_len is None:
            self._prompt_len = input_ids.shape[1]
            self._states = [ListState() for _ in range(input_ids.shape[0])]
        else:
            last = input_ids[:, -1].tolist()
            for i, tid in enumerate(last):
                state = self._states[i]
                if state is None:
                    continue
                if tid in self.stop_ids or tid not in self.token_text:
                    self._states[i] = None  # the row has ended (the sampler pads it from here)
                else:
                    self._states[i] = advance(
                        state, self.token_text[tid], max_values=self.max_values, max_digits=self.max_digits
                    )
        masked = torch.full_like(scores, float("-inf"))
        for i, state in enumerate(self._states):
            allowed = self.allowed_ids(state) if state is not None else torch.tensor(self.stop_ids)
            allowed = allowed.to(scores.device)
            masked[i, allowed] = scores[i, allowed]
        return masked


def number_list_processor(tokenizer, *, max_values: int = 10, max_digits: int = 3) -> NumberListConstraint:
    """The `--constrain numbers` processor for `sample_completions`."""
    return NumberListConstraint(tokenizer, max_values=max_values, max_digits=max_digits)


# Tokens the grammar needs at most: 10 values x 3 digits + 9 two-character separators + end.
MAX_LIST_TOKENS = 10 * 3 + 9 * 2 + 1
