import re
import os
import time

import pytest

from selfdev.algorithms import reference_paths
from selfdev.sandbox.probe import check_program
from selfdev.sandbox.program import CandidateRejected, normalise, static_check
from conftest import sandbox
from selfdev.sandbox.run import run_jobs

LIMITS = sandbox(wall_s=3, cpu_s=3, memory_mb=1024)


def test_static_check_categories():
    assert static_check("def merge(t):\n    return t[0]\n").code_hash
    cases = {
        "def merge(t)\n  return t": "syntax",
        "import os\ndef merge(t):\n    return t[0]": "import",
        "from subprocess import run\ndef merge(t):\n    return t[0]": "import",
        "def other(t):\n    return t[0]": "no_merge",
        "def merge(t, context, scale):\n    return t[0]": "no_merge",
        "def merge():\n    return 1": "no_merge",
    }
    for src, cat in cases.items():
        with pytest.raises(CandidateRejected) as err:
            static_check(src)
        assert err.value.category == cat, src


def test_normalise_ignores_layout_and_comments():
    a = "def merge(t):\n    # sum\n    return sum(t)\n"
    b = "def merge(t):  \n\n    return sum(t)"
    assert normalise(a) == normalise(b)
    assert static_check(a).code_hash == static_check(b).code_hash


@pytest.mark.parametrize("name", sorted(reference_paths()))
def test_reference_algorithms_are_executable(name):
    verdict = check_program(reference_paths()[name].read_text(), LIMITS)
    assert verdict.executable, verdict
    assert verdict.info["ignored_inputs"] == []


HOSTILE = {
    "timeout": "def merge(t):\n    while True:\n        pass\n",
    "wrong_shape": "def merge(t):\n    return t[0][:1]\n",
    "wrong_type": "def merge(t):\n    return [0.0]\n",
    "wrong_dtype": "def merge(t):\n    return t[0].long()\n",
    "non_finite": "def merge(t):\n    return t[0] * float('nan')\n",
    "nondeterministic": "import torch\ndef merge(t):\n    return torch.empty_like(t[0]).normal_()\n",
    "memory": "import torch\ndef merge(t):\n    x = torch.ones(10**10)\n    return t[0]\n",
    "exception": "def merge(t):\n    return t[0] / undefined_name\n",
    "import": "def merge(t):\n    os = __import__('os')\n    return t[0]\n",
    "magnitude": "def merge(t):\n    return t[0] * 1e6\n",
}


@pytest.mark.parametrize("category", sorted(HOSTILE))
def test_bad_programs_get_their_category(category):
    t0 = time.monotonic()
    verdict = check_program(HOSTILE[category], LIMITS)
    assert not verdict.executable
    assert verdict.category == category, verdict
    assert verdict.reason
    assert time.monotonic() - t0 < LIMITS.wall_s + 3


def test_timeout_kills_the_child_process_group():
    src = "def merge(t):\n    while True:\n        pass\n"
    before = _children()
    verdict = check_program(src, LIMITS)
    assert verdict.category == "timeout"
    assert _children() == before


def _children() -> set[int]:
    me = os.getpid()
    kids = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                        kids.add(int(pid))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return kids


def test_inputs_are_copies_in_place_mutation_does_not_leak():
    import torch

    src = "def merge(t):\n    t[0].mul_(0)\n    return t[0] + t[1]\n"
    data = [torch.ones(4), torch.full((4,), 2.0)]
    out = run_jobs(src, [("a", lambda: data), ("b", lambda: data)], {"a": (4,), "b": (4,)}, LIMITS)
    assert out.ok
    assert torch.equal(out.results["a"], torch.full((4,), 2.0))
    assert torch.equal(out.results["b"], torch.full((4,), 2.0))  # second call saw unmutated inputs
    assert torch.equal(data[0], torch.ones(4))


def test_exit_midway_is_a_crash():
    src = "import torch\ndef merge(t):\n    raise SystemExit(0)\n"
    verdict = check_program(src, LIMITS)
    assert verdict.category == "crash" and "SystemExit" in verdict.reason


def test_sandbox_doc_lists_exactly_the_sandbox_categories():
    from conftest import REPO
    from selfdev.sandbox.run import CATEGORIES

    text = (REPO / "docs" / "sandbox.md").read_text()
    listed = text.split("and one\nreason category:", 1)[1].split(". Verdicts are", 1)[0]
    assert set(re.findall(r"`(\w+)`", listed)) == set(CATEGORIES)
