"""The cost router's per-prompt decision: features of a prompt, scorers, the linear trainer.

A router names a strong and a weak model; its scorer maps a prompt to P(it needs the strong
model) and ``score >= threshold`` picks the strong one. See ``docs/routing.md``.
"""
