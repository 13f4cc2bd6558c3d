"""The hostile suite: programs that attack the sandbox. Each must get its verdict category, leave
the canary and the run's files untouched, leave no process behind, and leave the worker (this
pytest process) able to score the next benign program correctly."""

import os
import time

import pytest
import torch

from selfdev.sandbox.probe import check_program
from conftest import sandbox
from selfdev.sandbox.run import run_jobs

LIMITS = sandbox(wall_s=4, cpu_s=3, memory_mb=512, file_mb=1)
BENIGN = "import torch\ndef merge(t):\n    return torch.stack(t).sum(0) * 0.5\n"

# name -> (expected category, program); {canary} and {runfile} are filled with real paths.
HOSTILE = {
    "infinite_loop": ("timeout", "def merge(t):\n    while True:\n        pass\n"),
    "sleep_past_limit": ("timeout", "import torch\ndef merge(t):\n    torch.__dict__['__builtins__']['__import__']('time').sleep(60)\n    return t[0]\n"),
    "cpu_burn_catching_everything": ("timeout", "def merge(t):\n    while True:\n        try:\n            sum(range(10**7))\n        except BaseException:\n            pass\n"),
    "fork_bomb": ("forbidden", "import torch\ndef merge(t):\n    while True:\n        torch.os.fork()\n"),
    "fork_via_posix_spawn": ("forbidden", "import torch\ndef merge(t):\n    torch.os.posix_spawn('/bin/true', ['true'], {})\n    return t[0]\n"),
    "memory_bomb": ("memory", "import torch\ndef merge(t):\n    keep = [torch.ones(10**8) for _ in range(50)]\n    return t[0]\n"),
    "huge_output": ("output_too_large", "import torch\ndef merge(t):\n    return torch.zeros(10**7)\n"),
    "overwrite_canary": ("forbidden", "def merge(t):\n    open({canary!r}, 'w').write('pwned')\n    return t[0]\n"),
    "append_canary_os_open": ("forbidden", "import torch\ndef merge(t):\n    fd = torch.os.open({canary!r}, torch.os.O_WRONLY | torch.os.O_APPEND)\n    return t[0]\n"),
    "delete_canary": ("forbidden", "import torch\ndef merge(t):\n    torch.os.remove({canary!r})\n    return t[0]\n"),
    "rename_canary": ("forbidden", "import torch\ndef merge(t):\n    torch.os.rename({canary!r}, {canary!r} + '.moved')\n    return t[0]\n"),
    "read_run_scores": ("forbidden", "def merge(t):\n    open({runfile!r}).read()\n    return t[0]\n"),
    "read_etc_passwd": ("forbidden", "def merge(t):\n    open('/etc/passwd').read()\n    return t[0]\n"),
    "read_proc": ("forbidden", "def merge(t):\n    open('/proc/self/environ').read()\n    return t[0]\n"),
    "list_run_dir": ("forbidden", "import torch\ndef merge(t):\n    torch.os.listdir({rundir!r})\n    return t[0]\n"),
    "socket": ("forbidden", "import torch\ndef merge(t):\n    s = torch.__dict__['__builtins__']['__import__']('socket')\n    s.socket().connect(('127.0.0.1', 9))\n    return t[0]\n"),
    "os_system": ("forbidden", "import torch\ndef merge(t):\n    torch.os.system('touch {canary}.sys')\n    return t[0]\n"),
    "subprocess": ("forbidden", "import torch\ndef merge(t):\n    sp = torch.__dict__['__builtins__']['__import__']('subprocess')\n    sp.run(['rm', {canary!r}])\n    return t[0]\n"),
    "ctypes": ("forbidden", "import torch\ndef merge(t):\n    c = torch.__dict__['__builtins__']['__import__']('ctypes')\n    c.CDLL(None).system(b'rm {canary}')\n    return t[0]\n"),
    "kill_parent": ("forbidden", "import torch\ndef merge(t):\n    torch.os.kill(torch.os.getppid(), 9)\n    return t[0]\n"),
    "raise_rlimit": ("forbidden", "import torch\ndef merge(t):\n    r = torch.__dict__['__builtins__']['__import__']('resource')\n    r.setrlimit(r.RLIMIT_CPU, (10**6, 10**6))\n    return t[0]\n"),
    "sys_exit": ("crash", "def merge(t):\n    raise SystemExit(0)\n"),
    "os_exit": ("crash", "import torch\ndef merge(t):\n    torch.os._exit(0)\n"),
    "ignore_sigterm_then_loop": ("timeout", "import torch\ndef merge(t):\n    sig = torch.__dict__['__builtins__']['__import__']('signal')\n    sig.signal(sig.SIGTERM, sig.SIG_IGN)\n    while True:\n        pass\n"),
    "background_thread": ("forbidden", "import torch\ndef merge(t):\n    th = torch.__dict__['__builtins__']['__import__']('threading')\n    th.Thread(target=lambda: None, daemon=True).start()\n    return t[0]\n"),
    "recursion_bomb": ("recursion", "def merge(t):\n    def f(n):\n        return f(n + 1) + 1\n    return f(0)\n"),
    "import_os": ("import", "import os\ndef merge(t):\n    return t[0]\n"),
    "dunder_import": ("import", "def merge(t):\n    os = __import__('os')\n    return t[0]\n"),
    "eval_escape": ("import", "def merge(t):\n    eval(\"__import__('subprocess')\")\n    return t[0]\n"),
    "exec_escape": ("import", "def merge(t):\n    exec('import shutil')\n    return t[0]\n"),
    "chdir_out": ("forbidden", "import torch\ndef merge(t):\n    torch.os.chdir('/')\n    return t[0]\n"),
    "disk_bomb_in_tmp": ("file_size", "def merge(t):\n    with open('big.bin', 'wb') as fh:\n        while True:\n            fh.write(b'0' * 65536)\n"),
    "write_to_pipe": ("protocol", "import torch\ndef merge(t):\n    for fd in range(3, 64):\n        try:\n            torch.os.write(fd, b'xxxxxxxxxxxxxxxx')\n        except OSError:\n            pass\n    return t[0]\n"),
    "nan_output": ("non_finite", "def merge(t):\n    return t[0] * float('nan')\n"),
    "inf_output": ("non_finite", "def merge(t):\n    return t[0] / 0.0\n"),
    "wrong_shape": ("wrong_shape", "def merge(t):\n    return t[0].flatten()[:3]\n"),
    "non_tensor": ("wrong_type", "def merge(t):\n    return t[0].tolist()\n"),
    "integer_tensor": ("wrong_dtype", "def merge(t):\n    return (t[0] > 0).int()\n"),
    "complex_tensor": ("wrong_dtype", "import torch\ndef merge(t):\n    return torch.complex(t[0], t[0])\n"),
    "huge_magnitude": ("magnitude", "def merge(t):\n    return t[0] * 1e9\n"),
    "random_garbage": ("nondeterministic", "import torch\ndef merge(t):\n    return torch.empty_like(t[0]).uniform_()\n"),
}


@pytest.fixture()
def arena(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("canary")
    rundir = tmp_path / "results"
    rundir.mkdir()
    runfile = rundir / "score.json"
    runfile.write_text('{"accuracy": 0.5}')
    return {"canary": str(canary), "runfile": str(runfile), "rundir": str(rundir)}


def _fill(template: str, arena: dict) -> str:
    for key, value in arena.items():
        template = template.replace("{" + key + "!r}", repr(value)).replace("{" + key + "}", value)
    return template


def _children() -> set[int]:
    me, kids = os.getpid(), set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me or int(fields[2]) == me:  # parent or process group
                kids.add(int(pid))
    return kids


def _benign_still_correct() -> None:
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    out = run_jobs(BENIGN, [("x", lambda: [a, b])], {"x": (5, 7)}, LIMITS)
    assert out.ok, out
    assert torch.allclose(out.results["x"], (a + b) * 0.5)
    assert torch.stack([a, b]).sum(0).shape == (5, 7)  # this process's torch is unpatched


def test_suite_is_large_enough():
    assert len(HOSTILE) >= 25 and len({src for _, src in HOSTILE.values()}) == len(HOSTILE)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program(name, arena):
    expected, template = HOSTILE[name]
    source = _fill(template, arena)
    before = _children()
    t0 = time.monotonic()
    verdict = check_program(source, LIMITS)
    elapsed = time.monotonic() - t0
    assert verdict.category == expected, verdict
    assert not verdict.executable and verdict.reason
    assert elapsed < LIMITS.wall_s + 3
    assert open(arena["canary"]).read() == "canary"
    assert open(arena["runfile"]).read() == '{"accuracy": 0.5}'
    assert sorted(os.listdir(os.path.dirname(arena["canary"]))) == ["canary.txt", "results"]
    time.sleep(0.05)
    assert _children() - before == set()
    _benign_still_correct()


def test_monkey_patching_torch_does_not_reach_later_callers():
    patcher = ("import torch\ndef merge(t):\n    torch.stack = lambda *a, **k: None\n"
               "    torch.Tensor.__add__ = lambda a, b: a\n    return t[0] - t[1]\n")
    verdict = check_program(patcher, LIMITS)
    assert verdict.executable, verdict
    _benign_still_correct()


def test_in_place_mutation_does_not_reach_the_next_call_or_candidate():
    data = [torch.ones(4), torch.full((4,), 2.0)]
    mutator = "def merge(t):\n    t[0].mul_(0)\n    t[1].add_(100)\n    return t[0] + t[1]\n"
    out = run_jobs(mutator, [("a", lambda: data), ("b", lambda: data)], {"a": (4,), "b": (4,)}, LIMITS)
    assert out.ok and torch.equal(out.results["a"], out.results["b"])
    assert torch.equal(data[0], torch.ones(4)) and torch.equal(data[1], torch.full((4,), 2.0))
    _benign_still_correct()


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("SELFDEV_TEST_SECRET", "hunter2")
    snoop = ("import torch\ndef merge(t):\n    if 'SELFDEV_TEST_SECRET' in torch.os.environ:\n"
             "        raise ValueError('secret visible')\n    return t[0]\n")
    verdict = check_program(snoop, LIMITS)
    assert verdict.executable, verdict


def test_isolation_is_stated_in_the_verdict():
    verdict = check_program(BENIGN, LIMITS)
    iso = verdict.isolation
    assert iso["audit_hook"] is True
    assert iso["network"] in ("namespace", "seccomp (no sockets)", "audit hook (no socket module)")
    assert "syscalls" in iso


def test_verdicts_are_deterministic(arena):
    for name in ("wrong_shape", "overwrite_canary", "nan_output", "recursion_bomb"):
        expected, template = HOSTILE[name]
        source = _fill(template, arena)
        first, second = check_program(source, LIMITS), check_program(source, LIMITS)
        assert (first.category, first.reason) == (second.category, second.reason) == (first.category, first.reason)
        assert first.category == expected
