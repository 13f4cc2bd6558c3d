"""The one sandbox every candidate program runs in: the probe check and the real merge alike.

A candidate runs in a child forked from the (torch-loaded, so start-up is cheap) parent, in its
own process group and a fresh empty temporary directory, confined by `isolation.confine`
(seccomp, network namespace, resource limits, audit hook, scrubbed environment). A wall-clock
deadline kills the whole group. The child gets copies of its inputs and sends each result back
over a pipe as a small JSON header plus the tensor in safetensors bytes, never pickle, so the parent never deserialises
anything executable. Dtype, shape, size, finiteness and magnitude are checked in the parent;
scores are computed only by the parent.
"""

from __future__ import annotations

import errno
import inspect
import json
import os
import re
import select
import shutil
import signal
import struct
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence

import selfdev_blocks  # noqa: F401 - imported here so a forked child finds it in memory (it may read no src/)
from selfdev.sandbox.isolation import SandboxUnavailable, file_boundary, require_file_boundary
from selfdev.sandbox.program import CandidateRejected, load_merge

# Verdict categories; "ok" is the only executable one.
CATEGORIES = (
    "ok", "syntax", "import", "no_merge", "forbidden", "exception", "recursion", "timeout", "memory", "file_size",
    "crash",
    "wrong_type", "wrong_shape", "wrong_dtype", "non_finite", "magnitude", "output_too_large", "nondeterministic",
    "protocol",
)

_FLOAT_DTYPES = {"float16", "bfloat16", "float32", "float64"}
RESULT_NAME = "result"  # the one tensor of a child's safetensors message
_HEADER_MAX = 1 << 16
# The errno texts of EACCES / EPERM as C (strerror), Rust ("os error N") and Python print them.
_PATH = re.compile(r"(?<![\w.])(?:\.{0,2}/)[^\s<>'\",;()\[\]]+")
_DENIED = re.compile(r"Permission denied|Operation not permitted|\(os error (?:1|13)\)|\[Errno (?:1|13)\]")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one candidate run (config: `sandbox.*`)."""

    wall_s: float
    cpu_s: int
    memory_mb: int
    file_mb: int
    max_norm_ratio: float
    allowed_imports: tuple[str, ...]
    allow_without_landlock: bool  # run where the kernel has no Landlock (the audit hook the only file boundary)


@dataclass
class RunOutcome:
    """What came back from one sandboxed run: results by key, or the reason it stopped."""

    ok: bool
    category: str
    reason: str
    seconds: float
    results: dict[str, object] = field(default_factory=dict)
    isolation: dict = field(default_factory=dict)


# A job is a key plus a thunk producing the input tensors. Thunks run in the child, so inputs
# never cross the boundary as data: the child reads them from memory it inherited at fork.
Job = tuple[str, Callable[[], Sequence]]


def takes_context(merge: Callable) -> bool:
    """Whether `merge` is given the parameter's context (selfdev.params) as its second argument: when
    that parameter has no default, or is named `context`. `merge(task_vectors, lam=0.5)` is called with
    one argument, as before contexts existed. Called in the child only: reading an untrusted function's
    signature may run its code."""
    params = [p for p in inspect.signature(merge).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(params) >= 2 and (params[1].default is inspect.Parameter.empty or params[1].name == "context")


def _send(fd: int, header: dict, payload: bytes = b"") -> None:
    head = json.dumps(header).encode()
    data = struct.pack("<II", len(head), len(payload)) + head + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _classify_exception(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "not enough memory" in text:
        return "memory"
    if isinstance(exc, RecursionError):
        return "recursion"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "file_size"
    if isinstance(exc, (SystemExit, KeyboardInterrupt)):
        return "crash"
    if isinstance(exc, ImportError):
        return "import"
    if isinstance(exc, PermissionError) or "can't start new thread" in text or _refused_by_kernel(exc, text):
        return "forbidden"  # refused by the audit hook, Landlock or seccomp, and caught by the program
    return "exception"


def _refused_by_kernel(exc: BaseException, text: str) -> bool:
    """An error of a system call the sandbox refused (Landlock: EACCES; seccomp: EPERM), also when native
    code (torch, numpy, safetensors) turned it into its own exception with the errno's text."""
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return True
    return bool(_DENIED.search(text))


def _outside_paths(exc: BaseException, text: str, workdir: str) -> list[str]:
    """Paths outside the candidate's directory that a failed call was given: those in the error's text,
    then the string arguments of the frames it passed through (torch.save's error names no file). Runs
    in the sandboxed child after the program failed; the program may have planted any string here, and
    this only ever lands in the reason, never opens anything."""
    found: list[str] = []

    def consider(value: str) -> None:
        if "/" in value and len(value) < 4096 and "\0" not in value:
            real = os.path.realpath(os.path.join(workdir, value))
            if real != workdir and not real.startswith(workdir.rstrip("/") + "/") and real not in found:
                found.append(real)

    for match in _PATH.findall(text):
        consider(match)
    tb, frames = exc.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):  # innermost first: the call that opened the file
        for value in list(frame.f_locals.values())[:64] + list(frame.f_code.co_consts)[:64]:
            if type(value) is str:  # a local, or a constant of the code (a C call's literal argument)
                consider(value)
    return found


def _describe_failure(exc: BaseException, workdir: str) -> tuple[str, str]:
    """The verdict's category and reason for an exception the program raised or let through."""
    category = _classify_exception(exc)
    text = f"{type(exc).__name__}: {str(exc)[:300]}"
    frame = list(traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__), lookup_lines=False))[-1:]
    where = f" (line {frame[0].lineno})" if frame and frame[0].filename == "<candidate>" else ""
    if category in ("exception", "forbidden") and isinstance(exc, (OSError, RuntimeError, ValueError)):
        paths = _outside_paths(exc, text, os.path.realpath(workdir))
        # A file that exists but "is not found" was hidden by the boundary (safetensors reports EACCES so).
        hidden = isinstance(exc, FileNotFoundError) and any(os.path.lexists(p) for p in paths)
        if paths and (category == "forbidden" or hidden):
            return "forbidden", f"file boundary: {paths[0][:200]} is outside the sandbox ({text[:200]}){where}"
    return category, f"{text}{where}"


def _child(source: str, jobs: Sequence[Job], wfd: int, limits: SandboxLimits, workdir: str,
           keep_fds: tuple[int, ...] = (), contexts: dict[str, dict] | None = None) -> None:
    import torch
    from safetensors.torch import save as to_safetensors  # imported before the sandbox closes

    from selfdev.sandbox.isolation import confine

    torch.set_num_threads(1)

    def violation(reason: str) -> None:
        _send(wfd, {"status": "error", "category": "forbidden", "reason": reason[:300]})
        os._exit(3)

    def unavailable(reason: str) -> None:
        _send(wfd, {"status": "unavailable", "reason": reason[:500]})
        os._exit(4)

    facts = confine(workdir, limits, (wfd, *keep_fds), violation, unavailable)
    _send(wfd, {"status": "isolation", "facts": facts})
    try:
        merge = load_merge(source, limits.allowed_imports)
    except CandidateRejected as exc:
        category, reason = exc.category, exc.reason
        if category == "exception" and exc.__context__ is not None:  # the program's top level raised
            category, reason = _describe_failure(exc.__context__, workdir)
            reason = f"at load: {reason}"
        _send(wfd, {"status": "error", "category": category, "reason": reason})
        return
    with_context = None
    for key, thunk in jobs:
        inputs = [t.clone() for t in thunk()]
        try:
            if with_context is None:
                with_context = takes_context(merge)
            # A fresh copy per call: what one call does to its context never reaches the next.
            out = merge(inputs, dict((contexts or {}).get(key, {}))) if with_context else merge(inputs)
        except BaseException as exc:  # noqa: BLE001 - untrusted code may raise anything, SystemExit too
            category, reason = _describe_failure(exc, workdir)
            _send(wfd, {"status": "error", "category": category, "reason": reason, "key": key})
            return
        if not isinstance(out, torch.Tensor):
            _send(wfd, {"status": "error", "category": "wrong_type",
                        "reason": f"merge returned {type(out).__name__}, expected torch.Tensor", "key": key})
            return
        out = torch.Tensor.contiguous(torch.Tensor.detach(out))  # unbound: immune to a patched subclass
        try:
            payload = to_safetensors({RESULT_NAME: out})
        except Exception as exc:  # noqa: BLE001 - a dtype safetensors cannot hold (complex, ...)
            _send(wfd, {"status": "error", "category": "wrong_dtype",
                        "reason": f"result dtype {str(out.dtype).removeprefix('torch.')} cannot be returned ({exc})",
                        "key": key})
            return
        _send(wfd, {"status": "result", "key": key}, payload)
    _send(wfd, {"status": "done"})


class _Reader:
    """Reads framed messages from the child's pipe, never waiting past the deadline."""

    def __init__(self, fd: int, deadline: float):
        self.fd, self.deadline, self.buf = fd, deadline, bytearray()

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                raise TimeoutError
            chunk = os.read(self.fd, max(1 << 20, n - len(self.buf)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def message(self, max_payload: int) -> tuple[dict, bytes] | None:
        if not self._fill(8):
            return None
        hlen, plen = struct.unpack("<II", self.buf[:8])
        if hlen > _HEADER_MAX:
            raise ValueError(f"message header of {hlen} bytes")
        if plen > max_payload:
            raise OverflowError(f"result of {plen} bytes where at most {max_payload} were expected")
        if not self._fill(8 + hlen + plen):
            return None
        header = json.loads(bytes(self.buf[8 : 8 + hlen]))
        payload = bytes(self.buf[8 + hlen : 8 + hlen + plen])
        del self.buf[: 8 + hlen + plen]
        if not isinstance(header, dict):
            raise ValueError("message header is not an object")
        return header, payload


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _decode(payload: bytes, expected_shape: tuple[int, ...]):
    """The child's result from safetensors bytes (a format with no code in it: never pickle), checked
    for its single name, a floating dtype and the exact shape; safetensors checks the byte count."""
    from safetensors import SafetensorError
    from safetensors.torch import load as from_safetensors

    try:
        tensors = from_safetensors(payload)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise CandidateRejected("protocol", f"result is not a valid safetensors message ({str(exc)[:200]})") from None
    if set(tensors) != {RESULT_NAME}:
        raise CandidateRejected("protocol", f"result holds {sorted(tensors)[:3]}, expected one tensor")
    value = tensors[RESULT_NAME]
    dtype_name = str(value.dtype).removeprefix("torch.")
    if dtype_name not in _FLOAT_DTYPES:
        raise CandidateRejected("wrong_dtype", f"result dtype {dtype_name}, expected a floating dtype")
    if tuple(value.shape) != tuple(expected_shape):
        raise CandidateRejected("wrong_shape", f"result shape {list(value.shape)}, expected {list(expected_shape)}")
    return value


def require_finite(value, where: str) -> None:
    """Parent-side check of a result: NaN/inf never reach a model."""
    import torch

    if not torch.isfinite(value).all():
        raise CandidateRejected("non_finite", f"non-finite values {where}")


def largest_norm(inputs: Sequence) -> float:
    return max(float(t.norm()) for t in inputs)


def require_plausible_norm(value, largest_input_norm: float, ratio: float, where: str) -> None:
    """Parent-side check of a result: its norm is at most `ratio` times the largest input's norm."""
    norm = float(value.float().norm())
    if norm > ratio * largest_input_norm:
        raise CandidateRejected("magnitude", f"result norm {norm:.3g} {where} exceeds {ratio:g}x the largest input's")


def _nbytes(shape: tuple[int, ...]) -> int:
    n = 8  # float64 is the widest dtype accepted
    for s in shape:
        n *= s
    return n


def run_jobs(
    source: str,
    jobs: Sequence[Job],
    expected_shapes: dict[str, tuple[int, ...]],
    limits: SandboxLimits,
    accept: Callable[[str, object], None] | None = None,
    keep_fds: Sequence[int] = (),
    contexts: dict[str, dict] | None = None,
) -> RunOutcome:
    """Run `merge` of `source` on every job in a fresh sandboxed child.

    `keep_fds`: read-only descriptors the jobs read their inputs from (task-vector files); the child
    keeps them open when it closes everything else, since it may not open files itself.
    `contexts`: by job key, what a two-argument `merge(task_vectors, context)` is given (selfdev.params;
    a job without one gives it an empty dict); a one-argument `merge` is called without.

    Each result is decoded and type/shape-checked here in the parent, then passed to `accept`
    (which may raise CandidateRejected for value checks) or kept in `results` when no `accept`.
    """
    require_file_boundary(limits.allow_without_landlock)
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="selfdev-cand-")
    import safetensors.torch  # noqa: F401  - what the child imports, so that the boundary below is its own

    file_boundary(workdir)  # computed here once per process, so that forked children inherit it
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 0
        try:
            os.setpgid(0, 0)
            os.close(rfd)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)
            _child(source, jobs, wfd, limits, workdir, tuple(keep_fds), contexts)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except (ProcessLookupError, PermissionError):
        pass  # the child already did it, or already exited
    os.close(wfd)
    results: dict[str, object] = {}
    isolation: dict = {}
    reader = _Reader(rfd, t0 + limits.wall_s)
    # The largest result plus the safetensors header (name, dtype, shape, offsets: well under 1 KiB).
    largest = max((_nbytes(s) for s in expected_shapes.values()), default=0) + 1024
    category, reason, ended_early, unavailable = "ok", "", False, ""
    try:
        while True:
            msg = reader.message(max_payload=largest)
            if msg is None:
                category, reason, ended_early = "crash", "the program's process ended before finishing", True
                break
            header, payload = msg
            status = header.get("status")
            if status == "done":
                break
            if status == "isolation" and not isolation:
                isolation = header.get("facts") if isinstance(header.get("facts"), dict) else {}
                continue
            if status == "unavailable":  # the machine's fault, not the candidate's: no verdict
                unavailable = str(header.get("reason", ""))[:500]
                break
            if status == "error":
                category = str(header.get("category", "exception"))
                category = category if category in CATEGORIES else "exception"
                reason = str(header.get("reason", ""))[:500]
                break
            key = header.get("key")
            if status != "result" or not isinstance(key, str) or key not in expected_shapes or key in results:
                category, reason = "protocol", f"unexpected message for {str(key)[:40]!r}"
                break
            value = _decode(payload, expected_shapes[key])
            if accept is not None:
                accept(key, value)
                results[key] = True
            else:
                results[key] = value
        if category == "ok" and len(results) != len(expected_shapes):
            category, reason = "protocol", f"{len(results)} of {len(expected_shapes)} results came back"
    except TimeoutError:
        category, reason = "timeout", f"no result within the {limits.wall_s:g} s wall-clock limit"
    except OverflowError as exc:
        category, reason = "output_too_large", str(exc)
    except CandidateRejected as exc:
        category, reason = exc.category, exc.reason
    except (ValueError, UnicodeDecodeError) as exc:
        category, reason = "protocol", f"malformed message: {exc}"
    finally:
        _kill_group(pid)
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        shutil.rmtree(workdir, ignore_errors=True)
    if unavailable:
        raise SandboxUnavailable(unavailable)
    if ended_early:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and time.monotonic() - t0 >= limits.cpu_s):
                category, reason = "timeout", f"CPU-time limit of {limits.cpu_s} s exceeded"
            else:
                reason = f"killed by signal {signal.Signals(sig).name}"
        else:
            reason = f"exited with status {os.WEXITSTATUS(status)} before finishing"
    return RunOutcome(category == "ok", category, reason, time.monotonic() - t0,
                      results if category == "ok" else {}, isolation)
