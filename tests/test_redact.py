"""Redaction: every match masked, on RE2 (linear time) or, for patterns only Python's engine
knows, on ``re``."""

from __future__ import annotations

from finops.redact import MASK, _compiled, redact, redact_value


def test_the_default_patterns_mask_keys_emails_and_card_numbers():
    text = "mail bob@example.com, key sk-abcdefghijkl, Bearer abc.def-123456, 4111 1111 1111 1111"
    out = redact(text)
    for secret in ("bob@example.com", "sk-abcdefghijkl", "abc.def-123456", "4111 1111"):
        assert secret not in out
    assert out.count(MASK) == 4


def test_a_long_prompt_is_masked_where_it_matches_and_kept_elsewhere():
    filler = "The quarterly report shows spend on models rising; " * 8000
    out = redact_value([{"content": filler + " reach me at eve@example.org " + filler}])
    assert out[0]["content"].count(MASK) == 1 and out[0]["content"].startswith(filler)


def test_a_pattern_re2_cannot_compile_falls_back_to_pythons_engine(settings):
    settings.FINOPS_REDACT_PATTERNS = [r"secret(?=\d)"]  # a lookahead: not RE2 syntax
    _compiled.cache_clear()
    try:
        assert redact("secret1 secretX") == f"{MASK}1 secretX"
    finally:
        _compiled.cache_clear()
