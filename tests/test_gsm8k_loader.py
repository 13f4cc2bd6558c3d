"""GSM8K rows through the task loader (selfdev.scoring.tasks): real files, folders, parquet, bad inputs."""

import pytest

from selfdev.io import write_jsonl
from selfdev.scoring.prompts import load_template
from selfdev.scoring.tasks import load_task_rows, task_split
from conftest import REPO, gsm8k_file


def test_load_real_files_from_a_folder():
    folder = gsm8k_file("test.jsonl").parent
    rows = load_task_rows("gsm8k", str(folder), "test")
    assert len(rows) == 1319 and rows[0]["answer"].strip().splitlines()[-1].startswith("####")
    assert load_task_rows("gsm8k", str(folder), "train")[0]["question"].startswith("Natalia")
    assert {r["skill"] for r in rows} == {"gsm8k"}


def test_parquet_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": "q1", "answer": "a\n#### 1"}, {"question": "q2", "answer": "b\n#### 2"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    assert load_task_rows("gsm8k", str(tmp_path), "train") == [{**r, "skill": "gsm8k"} for r in rows]


def test_bad_inputs_name_the_file(tmp_path):
    (tmp_path / "test.jsonl").write_text('{"question": "q", "answer": "a\\n#### 1"}\n{not json\n')
    with pytest.raises(ValueError, match=r"test.jsonl:2"):
        load_task_rows("gsm8k", str(tmp_path), "test")
    write_jsonl([{"question": "q", "answer": "42"}], tmp_path / "test.jsonl")
    with pytest.raises(ValueError, match=r"test.jsonl: row 0"):
        load_task_rows("gsm8k", str(tmp_path), "test")
    with pytest.raises(FileNotFoundError, match="has no dev.jsonl or dev.parquet"):
        load_task_rows("gsm8k", str(tmp_path), "dev")
    with pytest.raises(FileNotFoundError, match="eval.source: folder not found"):
        load_task_rows("gsm8k", str(tmp_path / "x.jsonl"), "test")


def test_dev_and_shots_exceeding_train_is_an_error(tmp_path):
    write_jsonl([{"question": f"q{i}", "answer": f"#### {i}"} for i in range(8)], tmp_path / "train.jsonl")
    with pytest.raises(ValueError, match="eval.dev_size 6 \\+ 5 shots exceed the 8 train rows"):
        task_split("gsm8k", str(tmp_path), "dev", seed=0, dev_size=6, test_size=None, num_shots=5)


def test_five_shot_prompt_from_train():
    from selfdev.scoring.tasks import task_split

    tpl = load_template(REPO / "config" / "prompts" / "gsm8k_5shot.yaml")
    src = str(gsm8k_file("train.jsonl").parent)
    shots = task_split("gsm8k", src, "shots", seed=0, dev_size=100, test_size=None, num_shots=tpl.num_shots)
    assert len(shots) == 5
    prompt = tpl.render_query("How many?", shots)  # plain text (a tokenizer without a chat template)
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
