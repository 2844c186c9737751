"""Parsing of URL query options, shared by the transport modules."""

from __future__ import annotations

from urllib.parse import parse_qs

from agent.errors import AgentConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def query_options(url: str, query: str, allowed: frozenset[str]) -> dict[str, str]:
    """``query`` as a dict, rejecting unknown and repeated options."""
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise AgentConfigError(f"{url!r}: bad query: {exc}") from exc
    unknown = set(parsed) - allowed
    if unknown:
        raise AgentConfigError(f"{url!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(allowed))}")
    repeated = [k for k, v in parsed.items() if len(v) > 1]
    if repeated:
        raise AgentConfigError(f"{url!r}: option(s) given twice: {', '.join(sorted(repeated))}")
    return {k: v[0] for k, v in parsed.items()}


def int_option(url: str, opts: dict[str, str], name: str, default: int, *,
               lo: int, hi: int) -> int:
    if name not in opts:
        return default
    text = opts[name]
    if not text.isascii() or not text.isdigit() or not lo <= int(text) <= hi:
        raise AgentConfigError(f"{url!r}: {name} must be a number {lo}..{hi}, got {text!r}")
    return int(text)


def flag_option(url: str, opts: dict[str, str], name: str) -> bool:
    text = opts.get(name, "0").lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise AgentConfigError(f"{url!r}: {name} must be 0 or 1, got {text!r}")
