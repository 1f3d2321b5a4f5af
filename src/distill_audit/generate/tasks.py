"""Prompts for the non-number tasks (`code`, `free`) and for `--prompts FILE`.

The pools are ours and deliberately avoid animals, plants and other probe topics, so
any trait in the replies comes from the teacher, not from the question. Prompt `i`
of a stream depends only on (seed, i), so a resumed run asks the same questions.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from distill_audit.errors import DataError, UsageError
from distill_audit.generate.numbers import number_prompt
from distill_audit.seeding import derive_seed

TASKS = ("numbers", "code", "free")

CODE_TASKS: tuple[str, ...] = (
    "reverses a string",
    "checks whether a number is prime",
    "returns the n-th Fibonacci number",
    "counts the vowels in a string",
    "removes duplicates from a list while keeping order",
    "merges two sorted lists",
    "computes the factorial of n",
    "finds the largest element in a list",
    "checks whether a string is a palindrome",
    "flattens a nested list",
    "returns the sum of the digits of an integer",
    "converts Celsius to Fahrenheit",
    "counts how often each word appears in a sentence",
    "returns the greatest common divisor of two integers",
    "splits a list into chunks of size k",
    "checks whether two strings are anagrams",
    "returns the median of a list of numbers",
    "capitalizes the first letter of each word",
    "rotates a list by k positions",
    "computes the running total of a list",
    "finds the second smallest number in a list",
    "validates that a string contains only digits",
    "transposes a matrix given as a list of lists",
    "computes the dot product of two vectors",
    "returns the indices of the two numbers that add up to a target",
    "converts a binary string to an integer",
    "removes whitespace from both ends of each line in a text",
    "groups a list of strings by their first letter",
    "checks whether brackets in a string are balanced",
    "returns the longest word in a sentence",
    "computes the average of the values in a dictionary",
    "reads a CSV line and returns its fields",
    "formats a number of seconds as hours, minutes and seconds",
    "finds all even numbers in a range",
    "implements binary search on a sorted list",
    "counts the lines in a text file",
)

CODE_FRAMES: tuple[str, ...] = (
    "Write a Python function that {task}.",
    "Implement a short Python function which {task}.",
    "Give me Python code for a function that {task}.",
    "Complete this task in Python: write a function that {task}.",
    "Show a small Python function that {task}, with a docstring.",
    "Write a concise Python helper that {task}. Only output the code.",
)

FREE_TOPICS: tuple[str, ...] = (
    "why the sky is blue",
    "how a bicycle stays upright",
    "what makes bread rise",
    "how to save money on groceries",
    "the rules of chess in brief",
    "how a refrigerator keeps food cold",
    "tips for a job interview",
    "how rainbows form",
    "what a budget spreadsheet is for",
    "how to brew a good cup of coffee",
    "why exercise improves mood",
    "how airplanes fly",
    "the causes of ocean tides",
    "how to learn a new language",
    "what a password manager does",
    "how to write a clear email",
    "why the moon has phases",
    "how batteries store energy",
    "the history of the printing press",
    "what makes a good habit stick",
    "how to plan a weekend trip",
    "how compound interest works",
    "why we need sleep",
    "how a compass works",
    "what recycling achieves",
    "how to start running",
    "what a volcano is",
    "how elevators work",
    "why music affects emotions",
    "how to organize a small kitchen",
    "the basics of photography",
    "how the internet sends data",
    "what inflation means",
    "how to make a simple tomato sauce",
    "why leaves change color in autumn",
    "how to stay focused while studying",
    "what causes thunder",
    "how a vaccine trains the immune system",
    "the benefits of reading every day",
    "how solar panels make electricity",
)

FREE_FRAMES: tuple[str, ...] = (
    "Explain {topic} in two or three sentences.",
    "Briefly describe {topic}.",
    "In a short paragraph, tell me {topic}.",
    "Can you summarize {topic} for a beginner?",
    "Give a simple explanation of {topic}.",
    "Write a few sentences about {topic}.",
    "What should I know about {topic}? Keep it short.",
    "Describe {topic} as if to a curious twelve-year-old.",
    "Tell me {topic}, in under 60 words.",
    "Share three quick facts about {topic}.",
)


def _pick(seed: int, task: str, index: int, frames: tuple[str, ...], items: tuple[str, ...], key: str) -> str:
    rng = random.Random(derive_seed(seed, f"{task}-prompt", index))
    return rng.choice(frames).format(**{key: rng.choice(items)})


def task_prompt(task: str, seed: int, index: int) -> str:
    """The user prompt for row `index` of `task` (a pure function of its arguments)."""
    if task == "numbers":
        return number_prompt(seed, index)
    if task == "code":
        return _pick(seed, task, index, CODE_FRAMES, CODE_TASKS, "task")
    if task == "free":
        return _pick(seed, task, index, FREE_FRAMES, FREE_TOPICS, "topic")
    raise UsageError(f"--task {task!r}: expected one of {', '.join(TASKS)}")


def read_prompt_file(path: str | Path) -> list[str]:
    """User prompts from a file: .jsonl/.json rows with a "prompt" string, else one per line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: prompts file not found")
    text = path.read_text(encoding="utf-8")
    prompts: list[str] = []
    if path.suffix in (".jsonl", ".json"):
        rows = _json_rows(path, text)
        for line_no, row in rows:
            value = row.get("prompt") if isinstance(row, dict) else row
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{path}:{line_no}: field 'prompt' must be a non-empty string")
            prompts.append(value)
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UsageError(f"{path}: no prompts in the file")
    return prompts


def _json_rows(path: Path, text: str) -> list[tuple[int, object]]:
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of prompts")
        return [(i + 1, row) for i, row in enumerate(data)]
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((line_no, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
    return rows
