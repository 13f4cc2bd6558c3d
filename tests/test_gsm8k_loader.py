import pytest

from selfdev.scoring.gsm8k import load_rows, split_dev_test, subsample
from selfdev.io import write_jsonl
from selfdev.scoring.prompts import load_template
from conftest import REPO, gsm8k_file


def test_load_real_files_and_folder():
    test_path = gsm8k_file("test.jsonl")
    rows = load_rows(str(test_path))
    assert len(rows) == 1319 and rows[0]["answer"].strip().splitlines()[-1].startswith("####")
    assert load_rows(str(test_path.parent), split="train")[0]["question"].startswith("Natalia")


def test_parquet_roundtrip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": "q1", "answer": "a\n#### 1"}, {"question": "q2", "answer": "b\n#### 2"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "dev.parquet")
    assert load_rows(str(tmp_path / "dev.parquet")) == rows
    assert load_rows(str(tmp_path), split="dev") == rows


def test_bad_inputs_name_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a\\n#### 1"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        load_rows(str(bad))
    nomark = tmp_path / "nomark.jsonl"
    write_jsonl([{"question": "q", "answer": "42"}], nomark)
    with pytest.raises(ValueError, match=r"nomark.jsonl: row 0"):
        load_rows(str(nomark))
    missing = tmp_path / "x.jsonl"
    with pytest.raises(FileNotFoundError, match="x.jsonl"):
        load_rows(str(missing))
    with pytest.raises(ValueError, match="expected a .jsonl or .parquet"):
        load_rows(str(tmp_path / "data.csv"))
    with pytest.raises(FileNotFoundError, match="no dev.jsonl"):
        load_rows(str(_empty(tmp_path)), split="dev")


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_dev_test_split_is_disjoint_and_deterministic():
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(50)]
    dev, test = split_dev_test(rows, 10, 30, seed=3)
    assert len(dev) == 10 and len(test) == 30
    assert not {r["question"] for r in dev} & {r["question"] for r in test}
    assert split_dev_test(rows, 10, 30, seed=3) == (dev, test)
    assert subsample(rows, 5, 1) == subsample(rows, 5, 1) and len(subsample(rows, 500, 1)) == 50
    with pytest.raises(ValueError, match="dev_size"):
        split_dev_test(rows, 100, None, seed=0)


def test_five_shot_prompt_from_train():
    tpl = load_template(REPO / "config" / "prompts" / "gsm8k_5shot.yaml")
    train = load_rows(str(gsm8k_file("train.jsonl")))
    shots = tpl.pick_shots(train)
    assert len(shots) == 5 and shots == tpl.pick_shots(train)
    prompt = tpl.render_query("How many?", shots)
    assert prompt.count("Question:") == 6 and prompt.count("####") == 5
    assert prompt.endswith("Question: How many?\nAnswer:")
    assert tpl.cut(" 3+4=7\n#### 7\n\nQuestion: next one") == " 3+4=7\n#### 7"


def test_template_errors(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("query: 'no placeholder'\n")
    with pytest.raises(ValueError, match="placeholder"):
        load_template(p)
    p.write_text("quer: '{question}'\n")
    with pytest.raises(ValueError, match="unknown template keys"):
        load_template(p)
    with pytest.raises(FileNotFoundError):
        load_template(tmp_path / "none.yaml")
