import json

import pytest

from selfdev.scoring.answer import extract_answer, is_correct, normalize_number, reference_answer
from conftest import gsm8k_file

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


@pytest.mark.parametrize("text,expected", [
    ("so 3 + 4 = 7\n#### 1,234", "1234"),
    ("The answer is 1234.", "1234"),
    ("She has 5 apples.\nA: 26", "26"),
    ("It costs $18.00", "18"),
    ("The total is 18 dollars per day", "18"),
    ("The temperature drops to -5 degrees", "-5"),
    ("first 3 then 4 then 12.50.", "12.5"),
    ("#### 7 and later 9", "7"),
    ("A: 3\nmore text\nA: 4", "4"),
    ("The answer is: $1,000", "1000"),
    ("\\boxed{42}", "42"),
    ("no digits here", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_normalize_and_reference():
    assert normalize_number("$1,234.50") == "1234.5"
    assert normalize_number("007") == "7"
    assert normalize_number("-") is None
    assert reference_answer("work\n#### 72") == "72"
    with pytest.raises(ValueError, match="####"):
        reference_answer("no marker 72")
    assert is_correct("A: 18.0", "18")
    assert not is_correct("A: 19", "18")
    assert not is_correct("nothing", "18")


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_gsm8k_reference_scores_correct(split):
    rows = [json.loads(l) for l in gsm8k_file(f"{split}.jsonl").read_text().splitlines() if l.strip()]
    assert len(rows) == {"train": 7473, "test": 1319}[split]
    wrong = [r["answer"][-60:] for r in rows if not is_correct(r["answer"], reference_answer(r["answer"]))]
    assert wrong == []


def test_checker_agrees_with_gpt3_labels():
    rows = [json.loads(l) for l in gsm8k_file("example_model_solutions.jsonl").read_text().splitlines() if l.strip()]
    agree = total = 0
    for row in rows:
        gold = extract_answer(row["ground_truth"])
        for model in MODELS:
            sol = row[model]
            total += 1
            agree += is_correct(sol["solution"], gold) == sol["is_correct"]
    assert total == 5276
    assert agree / total >= 0.99, f"agreement {agree}/{total}"
