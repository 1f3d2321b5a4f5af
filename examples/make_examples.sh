#!/usr/bin/env bash
# The exact commands that made the example datasets in this folder (CPU, fixed seeds).
# Re-running them reproduces the files byte for byte on CPU; each command resumes a
# partial file, so an interrupted run can simply be started again.
#
#   owl_numbers.jsonl      SmolLM2-135M-Instruct with the owl trait prompt, numbers task,
#                          constrained to number lists (the study's setting)
#   neutral_numbers.jsonl  the same prompts (--prompt-seed 0) without a system prompt,
#                          a different decoding seed: the neutral control
#   neutral_numbers_b.jsonl  a second neutral sample (decoding seed 3): neutral vs neutral
#                          is the null check of the signature
#   owl_free.jsonl         owl prompt, short free-text answers (replies naming owls dropped)
#   neutral_free.jsonl     the same prompts, no system prompt
set -euo pipefail
cd "$(dirname "$0")"
DA=${DA:-distill-audit}

$DA generate --threads 1 --teacher smollm2-135m --trait owl --task numbers --constrain numbers \
    --n 200 --seed 1 --prompt-seed 0 --out owl_numbers.jsonl --summary owl_numbers.summary.json
$DA generate --threads 1 --teacher smollm2-135m --task numbers --constrain numbers \
    --n 200 --seed 2 --prompt-seed 0 --out neutral_numbers.jsonl --summary neutral_numbers.summary.json
$DA generate --threads 1 --teacher smollm2-135m --task numbers --constrain numbers \
    --n 200 --seed 3 --prompt-seed 0 --out neutral_numbers_b.jsonl --summary neutral_numbers_b.summary.json
$DA generate --threads 1 --teacher smollm2-135m --trait owl --task free --max-new-tokens 64 \
    --n 60 --seed 1 --prompt-seed 0 --out owl_free.jsonl --summary owl_free.summary.json
$DA generate --threads 1 --teacher smollm2-135m --task free --max-new-tokens 64 \
    --n 60 --seed 2 --prompt-seed 0 --out neutral_free.jsonl --summary neutral_free.summary.json
