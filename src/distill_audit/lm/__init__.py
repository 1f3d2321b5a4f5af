"""Model primitives shared by trait evidence (`traits/`) and generation (`generate/`).

`scoring` computes per-token completion log-probabilities, `sampler` the batched,
KV-cached sampling loop, `training` the completion-only fine-tuning loop, `padding`
the one pad-token rule they all use, and `threads` the torch thread setting.
Nothing here imports traits/, generate/, scan/, report/ or cli/.
"""
