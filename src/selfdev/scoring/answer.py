"""Answer extraction and exact-match checking for GSM8K-style outputs.

Real model output ends in many ways (`#### 1,234`, `The answer is 1234.`, `A: 26`, `$18.00`,
`18 dollars`); we look for an explicit answer marker first and fall back to the last number,
which is what GSM8K evaluation harnesses do.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number as people write it: optional sign, optional $, thousands separators, decimals.
_NUMBER = r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\$?\s?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
# Markers in order of trust; each captures the first number after the marker.
_MARKERS = [
    re.compile(r"####\s*(" + _NUMBER + ")"),
    re.compile(r"answer is[:\s]*\(?\s*(" + _NUMBER + ")", re.IGNORECASE),
    re.compile(r"(?:^|\n)\s*A:\s*(" + _NUMBER + ")"),
    re.compile(r"\\boxed\{\s*(" + _NUMBER + ")"),
]


def normalize_number(text: str) -> str | None:
    """Canonical decimal string of a number as written (`$1,234.50` -> `1234.5`), or None."""
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    if not cleaned or cleaned in {"-", "."}:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def extract_answer(text: str) -> str | None:
    """The final numeric answer in a model completion, normalised; None when there is no number."""
    for marker in _MARKERS:
        found = marker.findall(text)
        if found:
            # The last marked answer wins: models sometimes restate an intermediate "A:" first.
            value = normalize_number(found[-1])
            if value is not None:
                return value
    for candidate in reversed(_NUMBER_RE.findall(text)):
        value = normalize_number(candidate)
        if value is not None:
            return value
    return None


def reference_answer(answer_field: str) -> str:
    """The gold answer of a GSM8K row: the number after the final `####`."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '#### <number>' line: {answer_field[-80:]!r}")
    value = normalize_number(answer_field.rsplit("####", 1)[1].strip())
    if value is None:
        raise ValueError(f"GSM8K answer's '####' line holds no number: {answer_field[-80:]!r}")
    return value


def is_correct(completion: str, gold: str) -> bool:
    """Exact match of the extracted answer against a normalised gold answer."""
    predicted = extract_answer(completion)
    return predicted is not None and predicted == normalize_number(gold)
