"""The hostile suite: programs that attack the sandbox. Each must get its verdict category, leave
the canary and the run's files untouched, leave no process behind, and leave the worker (this
pytest process) able to score the next benign program correctly."""

import errno
import os
import platform
import sys
import time

import pytest
import torch

from selfdev.sandbox.probe import check_program
from conftest import sandbox
from selfdev.sandbox.isolation import SandboxUnavailable, landlock_available
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

# Native file I/O: torch, safetensors and the standard library open these files in C/C++/Rust, where the
# audit hook sees nothing; only the kernel's file boundary (Landlock) stops them. Each passed the sandbox
# before it had one (a changed canary, a new file beside it, or a run file's contents in the reason).
# name -> (program, the path its reason must name). The reason never holds the contents ("LEAKED").
_B = "torch.__dict__['__builtins__']['__import__']"
NATIVE = {
    "torch_from_file_shared_write": (
        "import torch\ndef merge(t):\n    m = torch.from_file({canary!r}, shared=True, size=6, dtype=torch.uint8)\n"
        "    m.fill_(88)\n    return torch.stack(t).mean(dim=0)\n", "canary"),
    "torch_from_file_read_etc_passwd": (
        "import torch\ndef merge(t):\n    d = torch.from_file('/etc/passwd', shared=False, size=16, dtype=torch.uint8)\n"
        "    raise ValueError('LEAKED:' + bytes(d.tolist()).decode(errors='replace'))\n", "/etc/passwd"),
    "torch_from_file_read_run_file": (
        "import torch\ndef merge(t):\n    d = torch.from_file({runfile!r}, shared=False, size=8, dtype=torch.uint8)\n"
        "    raise ValueError('LEAKED:' + bytes(d.tolist()).decode(errors='replace'))\n", "runfile"),
    "torch_save_outside": (
        "import torch\ndef merge(t):\n    torch.save(t[0], {canary!r} + '.pt')\n    return t[0]\n", "canary"),
    "torch_jit_save_outside": (
        "import torch\ndef merge(t):\n    torch.jit.trace(torch.nn.Identity(), t[0]).save({canary!r} + '.jit')\n"
        "    return t[0]\n", "canary"),
    "torch_file_reader_run_checkpoint": (
        "import torch\ndef merge(t):\n    r = torch._C.PyTorchFileReader({checkpoint!r})\n"
        "    raise ValueError('LEAKED:' + str(r.get_record('data/0')))\n", "checkpoint"),
    "safetensors_read_run_tensors": (
        f"import torch\ndef merge(t):\n    st = {_B}('safetensors.torch', fromlist=['load_file'])\n"
        "    raise ValueError('LEAKED:' + str(st.load_file({tensors!r})))\n", "tensors"),
    "sqlite3_creates_outside": (
        f"import torch\ndef merge(t):\n    {_B}('sqlite3').connect({{canary!r}} + '.db').execute('create table x(y)')\n"
        "    return t[0]\n", "canary"),
    "readline_writes_outside": (
        f"import torch\ndef merge(t):\n    {_B}('readline').write_history_file({{canary!r}} + '.hist')\n"
        "    return t[0]\n", "canary"),
    "native_write_at_load_time": (
        "import torch\ntorch.save(torch.ones(2), {canary!r} + '.pt')\ndef merge(t):\n    return t[0]\n", "canary"),
}


@pytest.fixture()
def arena(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("canary")
    rundir = tmp_path / "results"
    rundir.mkdir()
    runfile = rundir / "score.json"
    runfile.write_text('{"accuracy": 0.5}')
    checkpoint, tensors = rundir / "factory.pt", rundir / "tau.safetensors"
    torch.save(torch.arange(4.0), checkpoint)
    from safetensors.torch import save_file

    save_file({"w": torch.arange(4.0)}, str(tensors))
    return {"canary": str(canary), "runfile": str(runfile), "rundir": str(rundir), "checkpoint": str(checkpoint),
            "tensors": str(tensors)}


def _run_files(arena: dict) -> dict:
    return {k: open(arena[k], "rb").read() for k in ("canary", "runfile", "checkpoint", "tensors")}


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


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_file_io_stops_at_the_kernel_boundary(name, arena):
    template, target = NATIVE[name]
    before = _run_files(arena)
    verdict = check_program(_fill(template, arena), LIMITS)
    assert verdict.category == "forbidden", verdict
    assert not verdict.executable
    assert arena.get(target, target) in verdict.reason  # the path, so a user sees what was refused
    assert "LEAKED" not in verdict.reason and "root:" not in verdict.reason
    assert verdict.isolation.get("filesystem", "").startswith("landlock v"), verdict.isolation
    assert _run_files(arena) == before
    assert sorted(os.listdir(os.path.dirname(arena["canary"]))) == ["canary.txt", "results"]
    _benign_still_correct()


def test_native_file_io_inside_its_own_directory_still_works():
    own = ("import torch\ndef merge(t):\n    torch.save(t[0], 'mine.pt')\n"
           "    m = torch.from_file('mine.pt', shared=True, size=8, dtype=torch.uint8)\n"
           "    assert torch._C.PyTorchFileReader('mine.pt').get_all_records()\n    return t[0] + t[1]\n")
    verdict = check_program(own, LIMITS)
    assert verdict.executable, verdict


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


def _linux_x86_64() -> bool:
    return sys.platform == "linux" and platform.machine() == "x86_64"


def test_isolation_is_stated_in_the_verdict():
    verdict = check_program(BENIGN, LIMITS)
    iso = verdict.isolation
    assert iso["audit_hook"] is True
    assert iso["network"] in ("namespace", "seccomp (no sockets)", "audit hook (no socket module)")
    if _linux_x86_64():  # CI's machine: losing a kernel layer fails here rather than passing quietly
        assert iso["syscalls"].startswith("seccomp (x86_64, "), iso
        assert landlock_available() >= 1, "this Linux x86-64 kernel offers no Landlock"
        assert iso["filesystem"] == f"landlock v{landlock_available()}", iso
    else:
        assert "syscalls" in iso and "filesystem" in iso


def _in_child(fn) -> dict:
    """Run `fn()` in a forked child and return the dict it returns (JSON over a pipe)."""
    import json

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.write(wfd, json.dumps(fn()).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    data = b""
    while chunk := os.read(rfd, 65536):
        data += chunk
    os.close(rfd)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(not landlock_available(), reason="the kernel offers no Landlock")
def test_landlock_alone_confines_every_open(arena, tmp_path):
    """The kernel layer on its own (no audit hook, no seccomp): os.open refused outside the trees."""
    from selfdev.sandbox import landlock
    from selfdev.sandbox.isolation import file_boundary

    own = tmp_path / "own"
    own.mkdir()
    boundary = file_boundary(str(own))

    def attempts() -> dict:
        landlock.restrict(list(boundary.readable), list(boundary.writable), list(boundary.read_files),
                          list(boundary.write_files))
        tries = {
            "write canary": (arena["canary"], os.O_WRONLY),
            "read run file": (arena["runfile"], os.O_RDONLY),
            "read /etc/passwd": ("/etc/passwd", os.O_RDONLY),
            "create beside canary": (arena["canary"] + ".new", os.O_WRONLY | os.O_CREAT),
            "create in own dir": (str(own / "x"), os.O_WRONLY | os.O_CREAT),
            "read torch": (torch.__file__, os.O_RDONLY),
            "write torch": (torch.__file__, os.O_WRONLY),
        }
        out = {}
        for what, (path, flags) in tries.items():
            try:
                os.close(os.open(path, flags, 0o600))
                out[what] = "ok"
            except OSError as exc:
                out[what] = exc.errno
        return out

    got = _in_child(attempts)
    assert got == {"write canary": errno.EACCES, "read run file": errno.EACCES, "read /etc/passwd": errno.EACCES,
                   "create beside canary": errno.EACCES, "create in own dir": "ok", "read torch": "ok",
                   "write torch": errno.EACCES}
    assert open(arena["canary"]).read() == "canary" and not os.path.exists(arena["canary"] + ".new")


def test_readable_roots_never_hold_the_working_directory(tmp_path, monkeypatch):
    """A script's folder on sys.path (/tmp, a checkout) must not open the run's files to candidates."""
    from selfdev.sandbox.isolation import file_boundary

    run = tmp_path / "run"
    (run / "results").mkdir(parents=True)
    monkeypatch.chdir(run)
    monkeypatch.syspath_prepend(str(tmp_path))  # an ancestor of the working directory
    monkeypatch.syspath_prepend(str(run / "results"))  # a folder inside it
    boundary = file_boundary(str(tmp_path / "cand"))
    for root in boundary.readable + boundary.read_files:
        assert not str(run).startswith(root.rstrip("/") + "/") and root != str(run), root
        assert not root.startswith(str(run)), root


def test_inherited_shared_writable_mapping_is_dropped(tmp_path):
    """A file the parent maps shared and writable needs no open() to be written: the child unmaps it."""
    import mmap

    target = tmp_path / "mapped.bin"
    target.write_bytes(b"original")
    with open(target, "r+b") as fh:
        view = mmap.mmap(fh.fileno(), 8)

        def write_through_mapping():
            view[:8] = b"XXXXXXXX"  # runs in the sandboxed child, like a candidate would
            return [torch.ones(2), torch.ones(2)]

        out = run_jobs(BENIGN, [("x", write_through_mapping)], {"x": (2,)}, LIMITS)
        view.close()
    assert out.category == "crash" and "SIGSEGV" in out.reason, out
    assert target.read_bytes() == b"original"


def test_without_landlock_nothing_runs_unless_the_config_accepts_it(monkeypatch):
    from selfdev.sandbox import isolation, landlock

    monkeypatch.setattr(landlock, "abi_version", lambda: 0)  # a kernel without Landlock, parent and child
    isolation.landlock_available.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="sandbox.allow_without_landlock"):
            check_program(BENIGN, LIMITS)
        # The child refuses too, should the parent's check be skipped.
        monkeypatch.setattr("selfdev.sandbox.run.require_file_boundary", lambda allow: None)
        with pytest.raises(SandboxUnavailable, match="Landlock could not be applied"):
            check_program(BENIGN, LIMITS)
        weak = sandbox(wall_s=4, cpu_s=3, memory_mb=512, file_mb=1, allow_without_landlock=True)
        verdict = check_program(BENIGN, weak)
        assert verdict.executable, verdict
        assert verdict.isolation["filesystem"].startswith("audit hook only: no Landlock")
        assert "sandbox.allow_without_landlock: true" in verdict.isolation["filesystem"]
    finally:
        isolation.landlock_available.cache_clear()


def test_cli_refuses_to_check_without_landlock(tmp_path, monkeypatch, capsys):
    from selfdev import cli
    from selfdev.sandbox import isolation, landlock

    program = tmp_path / "p.py"
    program.write_text(BENIGN)
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    isolation.landlock_available.cache_clear()
    try:
        assert cli.main(["check", str(program)]) == 2
    finally:
        isolation.landlock_available.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("selfdev: error: ") and "allow_without_landlock" in err[0]


def test_verdicts_are_deterministic(arena):
    for name in ("wrong_shape", "overwrite_canary", "nan_output", "recursion_bomb"):
        expected, template = HOSTILE[name]
        source = _fill(template, arena)
        first, second = check_program(source, LIMITS), check_program(source, LIMITS)
        assert (first.category, first.reason) == (second.category, second.reason)
        assert first.category == expected
