"""The switch API's examples in docs/credit-control.md have the shapes the API answers: every field of a call,
of a charge line, of an authorize and of an update answer, no field the API does not send. A field added to a
reply and not to the examples (or the other way round) fails here, so the examples a switch's developer copies
stay true."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tollway.http.api.calls import AuthorizeOut, CallOut, CallPage, ChargeOut, UpdateOut

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "credit-control.md"


def json_examples() -> list[tuple[int, Any]]:
    """Each JSON example of the guide that parses, with the line it starts on."""
    text = GUIDE.read_text(encoding="utf-8")
    examples = []
    for match in re.finditer(r"```json\n(.*?)```", text, re.S):
        try:
            example = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue  # an excerpt with "..." in it, not a whole answer
        examples.append((text.count("\n", 0, match.start()) + 2, example))
    return examples


def fields(model: type[Any]) -> set[str]:
    return set(model.model_fields)


def calls_in(example: Any) -> list[dict[str, Any]]:
    """The calls an example shows: one call, a page of calls, or a list of them."""
    if isinstance(example, list):
        return [item for item in example if is_call(item)]
    if isinstance(example, dict) and set(example) == fields(CallPage):
        return list(example["items"])
    return [example] if is_call(example) else []


def is_call(example: Any) -> bool:
    return isinstance(example, dict) and {"call_id", "reference"} <= set(example)  # ledger transfers: no call_id


EXAMPLES = json_examples()


def test_the_guide_has_examples_of_calls_and_answers() -> None:
    shown = [call for _, example in EXAMPLES for call in calls_in(example)]
    assert len(shown) >= 10
    assert any(set(example) == fields(AuthorizeOut) for _, example in EXAMPLES if isinstance(example, dict))


@pytest.mark.parametrize(("line", "example"), EXAMPLES, ids=[f"line-{line}" for line, _ in EXAMPLES])
def test_an_example_has_the_fields_the_api_sends(line: int, example: Any) -> None:
    for call in calls_in(example):
        assert set(call) == fields(CallOut), f"docs/credit-control.md:{line}: a call's fields"
        for charge in call["charges"] or []:
            assert set(charge) == fields(ChargeOut), f"docs/credit-control.md:{line}: a charge line's fields"
    if isinstance(example, dict) and "reference" not in example and {"call_id", "max_seconds"} <= set(example):
        expected = fields(AuthorizeOut) if "sip_code" in example else fields(UpdateOut)
        assert set(example) == expected, f"docs/credit-control.md:{line}: an authorize or update answer's fields"
