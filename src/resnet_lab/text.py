"""Wording shared by every printed line: counts with their nouns, fractions as percentages."""


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 epoch``, ``3 epochs``, ``1,200 steps``, ``2 classes`` (``plural`` where "s" is not it)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def percent(fraction: float, digits: int = 1) -> str:
    """``0.0875`` -> ``8.8%`` (``digits`` after the point)."""
    return f"{100 * fraction:.{digits}f}%"
