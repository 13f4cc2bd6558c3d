"""OS-level confinement of a candidate's process, applied in the forked child before any of the
candidate's code runs. Layers, each stated in the verdict's `isolation` record:

1. Landlock (`filesystem`, Linux >= 5.13, see `landlock.py`): the kernel's file boundary, whoever
   opens the file (Python, or torch/numpy/safetensors/sqlite3 in native code): read only beneath the
   Python installation, the folders of packages imported from elsewhere and of the shared libraries
   loaded; read and write only beneath the candidate's own directory (and /dev/null). Where the
   kernel has no Landlock, nothing runs unless `sandbox.allow_without_landlock` is true.
2. seccomp-BPF (Linux, x86-64/aarch64): no new processes or threads, no exec, no sockets, no
   signals to other processes, no ptrace/namespace calls; the kernel refuses them (EPERM).
3. a new network namespace when the kernel allows it (root or user namespaces): no interfaces.
4. resource limits: CPU time, address space, file size, open files, no core dumps.
5. a Python audit hook: the same file boundary for what Python opens (with a readable reason),
   `/proc`, file-system changes, imports of process/socket/ctypes modules, `os.system`, `os.kill` ...
   end the candidate at once with the category `forbidden`. It sees nothing native code does.
6. inherited file descriptors closed, shared writable mappings inherited from the parent unmapped,
   environment scrubbed, working directory a fresh empty one.

This is defence in depth inside one kernel, not a virtual machine: a kernel exploit, a bug in
torch or CPython, or side channels are out of scope (see docs/sandbox.md, "Threat model").
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import struct
import sys
from dataclasses import dataclass

# Modules whose import from candidate code (directly, or reached through torch internals) is refused.
DANGEROUS_MODULES = frozenset({
    "ctypes", "_ctypes", "subprocess", "_posixsubprocess", "socket", "_socket", "ssl", "_ssl", "multiprocessing",
    "_multiprocessing", "pty", "fcntl", "mmap", "resource", "urllib", "http", "ftplib", "smtplib", "telnetlib",
    "webbrowser", "asyncio", "xmlrpc", "socketserver",
})

# Audit events that are never legitimate for a merge function.
BLOCKED_EVENTS = frozenset({
    "os.system", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.exec", "os.posix_spawn", "os.spawn",
    "os.startfile", "os.putenv", "os.unsetenv", "os.chdir", "os.setxattr", "os.removexattr", "os.chflags",
    "os.lchflags", "signal.pthread_kill", "subprocess.Popen", "sys.addaudithook", "sys.setprofile",
    "sys.settrace", "sys.remote_exec", "pty.spawn", "socket.__new__", "socket.bind", "socket.connect",
    "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "socket.sendmsg", "mmap.__new__",
    "resource.setrlimit", "resource.prlimit", "webbrowser.open", "urllib.Request", "ftplib.connect",
    "smtplib.connect", "telnetlib.Telnet.open", "http.client.connect", "fcntl.ioctl", "fcntl.fcntl",
    "fcntl.flock", "fcntl.lockf", "glob.glob", "shutil.rmtree", "shutil.copyfile", "shutil.move",
    "shutil.make_archive", "shutil.unpack_archive", "shutil.chown", "code.__new__", "function.__new__",
    "sqlite3.enable_load_extension", "sqlite3.load_extension",
})

# Events that change the file system: allowed only inside the candidate's temporary directory.
FS_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
    "os.truncate", "os.utime",
})
READ_EVENTS = frozenset({"os.listdir", "os.scandir"})

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# --- seccomp -------------------------------------------------------------------------------------
_ARCH = {  # machine -> (AUDIT_ARCH, syscalls denied outright, clone-like syscalls)
    "x86_64": (0xC000003E, {
        "socket": 41, "connect": 42, "bind": 49, "listen": 50, "socketpair": 53, "fork": 57, "vfork": 58,
        "execve": 59, "kill": 62, "ptrace": 101, "setsid": 112, "mount": 165, "tkill": 200, "tgkill": 234,
        "unshare": 272, "setns": 308, "execveat": 322, "clone3": 435, "process_vm_writev": 311,
        "pidfd_open": 434, "pidfd_send_signal": 424,
    }, {"clone": 56}),
    "aarch64": (0xC00000B7, {
        "socket": 198, "socketpair": 199, "bind": 200, "listen": 201, "connect": 203, "execve": 221,
        "kill": 129, "tkill": 130, "tgkill": 131, "ptrace": 117, "setsid": 157, "mount": 40, "unshare": 97,
        "setns": 268, "execveat": 281, "clone3": 435, "process_vm_writev": 271, "pidfd_open": 434,
        "pidfd_send_signal": 424,
    }, {"clone": 220}),
}
_EPERM = 1


# Our own BPF assembler rather than libseccomp: its Python bindings load the system library through
# ctypes (not on every machine, and a library loaded into the child we confine); the filter is ~30 words.
def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _seccomp_program(machine: str) -> bytes:
    arch, denied, clones = _ARCH[machine]
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | _EPERM
    nrs = sorted(set(denied.values()) | set(clones.values()))
    prog = [_bpf(ld_abs, 0, 0, 4), _bpf(jeq, 1, 0, arch), _bpf(ret, 0, 0, deny), _bpf(ld_abs, 0, 0, 0)]
    if machine == "x86_64":  # x32 ABI syscalls carry bit 30: refuse them all
        prog.append(_bpf(jge, 0, 1, 0x40000000))
        prog.append(_bpf(ret, 0, 0, deny))
    for i, nr in enumerate(nrs):
        # Jump to the final "deny" (which sits after the remaining checks and the "allow").
        remaining = len(nrs) - i - 1
        prog.append(_bpf(jeq, remaining + 1, 0, nr))
    prog.append(_bpf(ret, 0, 0, allow))
    prog.append(_bpf(ret, 0, 0, deny))
    return b"".join(prog)


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def install_seccomp() -> str:
    """Install the filter; returns a description or raises OSError."""
    import ctypes

    machine = platform.machine()
    if machine not in _ARCH:
        raise OSError(f"seccomp filter not available for {machine}")
    prog = _seccomp_program(machine)
    n = len(prog) // 8
    buf = ctypes.create_string_buffer(prog, len(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(n, ctypes.addressof(buf))
    libc = _libc()
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
    return f"seccomp ({machine}, {n} instructions)"


def new_network_namespace() -> bool:
    """unshare(CLONE_NEWNET), with a user namespace first when not root. True on success."""
    CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
    libc = _libc()
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    return libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0


# --- everything together ---------------------------------------------------------------------------
class SandboxUnavailable(RuntimeError):
    """The kernel cannot enforce the file boundary and the config does not accept a weaker sandbox."""


NO_LANDLOCK_KEY = "sandbox.allow_without_landlock"


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _contains(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _readable_roots() -> list[str]:
    """The Python installation (its prefixes and site-packages) and the folder of every package already
    imported from elsewhere: what a candidate's imports read. Never a folder that holds the working
    directory, nor one inside it other than a Python prefix (a virtual environment in the checkout):
    the run's results, a checkout's `src/` and Snakemake's job scripts live there. Not sys.path as such:
    a script's own folder (sys.path[0], /tmp say) would open everything beside it."""
    import site

    cwd = os.path.realpath(os.getcwd())
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    roots = set(prefixes)
    sites = list(getattr(site, "getsitepackages", lambda: [])()) + [getattr(site, "USER_SITE", None) or ""]
    for p in sites:
        if p and os.path.isdir(p):
            roots.add(os.path.realpath(p))
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if "." in name or name in ("__main__", "__mp_main__") or not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if os.path.basename(real).startswith("__init__."):
            real = os.path.dirname(real)  # a package: its folder, for its submodules imported later
        if not _contains(cwd, real) and not _under(real, roots):
            roots.add(real)
    return sorted(r for r in roots if r != "/" and not _contains(r, cwd)
                  and (r in prefixes or not _contains(cwd, r))
                  and not any(_contains(sys_root, r) for sys_root in ("/proc", "/sys", "/dev")))


def _library_folders(roots: list[str]) -> list[str]:
    """Folders of the shared libraries this process has mapped outside `roots` (libc, libstdc++ in
    /usr/lib/x86_64-linux-gnu): readable, so that the dynamic loader finds a library an import loads
    later (libsqlite3 for sqlite3, say). Libraries only: no configuration or user data lives there."""
    found = set()
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.split(None, 5)
            path = parts[5].strip() if len(parts) == 6 else ""
            if path.startswith("/") and ".so" in os.path.basename(path) and not path.endswith("(deleted)"):
                folder = os.path.dirname(os.path.realpath(path))
                if not _under(folder, roots) and folder not in ("/", "/etc", "/tmp") and not folder.startswith(
                        ("/proc", "/sys", "/dev", "/home", "/root", "/tmp/")):
                    found.add(folder)
    return sorted(found)


@dataclass(frozen=True)
class FileBoundary:
    """What a candidate's process may touch: read beneath `readable` (and the single `read_files`),
    read and write beneath `writable` (its own directory) and the single `write_files` (/dev/null)."""

    readable: tuple[str, ...]
    writable: tuple[str, ...]
    read_files: tuple[str, ...]
    write_files: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def _readable(cwd: str, n_modules: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(readable folders, readable single files) for a process in `cwd` with `n_modules` imported: the
    walk over sys.modules and /proc/self/maps costs ~20 ms, so the parent computes it once and every
    child it forks inherits the result (a new import, or another working directory, computes it again)."""
    roots = _readable_roots()
    # ld.so.cache: the loader's index of libraries; /dev/urandom: torch.seed() and friends read it.
    extra = [p for p in ("/etc/ld.so.cache", "/dev/urandom") if os.path.exists(p)]
    return tuple(roots + _library_folders(roots)), tuple(extra)


def file_boundary(workdir: str) -> FileBoundary:
    readable, read_files = _readable(os.path.realpath(os.getcwd()), len(sys.modules))
    return FileBoundary(readable, (os.path.realpath(workdir),), read_files, ("/dev/null",))


def drop_shared_writable_mappings() -> int:
    """Unmap every shared, writable mapping inherited from the parent (a file it maps read-write, shared
    memory of an engine's message queue): writes through one reach the file or the other process with no
    open() for Landlock to refuse. The child needs none of them. Returns how many were dropped."""
    import ctypes

    with open("/proc/self/maps") as fh:
        lines = fh.readlines()
    libc = _libc()
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    dropped = 0
    for line in lines:
        span, perms = line.split(None, 2)[:2]
        if perms[1] == "w" and perms[3] == "s":
            start, end = (int(x, 16) for x in span.split("-"))
            if libc.munmap(start, end - start) == 0:
                dropped += 1
    return dropped


@functools.lru_cache(maxsize=1)
def landlock_available() -> int:
    """The Landlock ABI version the kernel offers (0: none)."""
    from selfdev.sandbox import landlock

    try:
        return landlock.abi_version()
    except (OSError, AttributeError):
        return 0


def require_file_boundary(allow_without_landlock: bool) -> None:
    """Refuse, before any candidate runs, where the kernel has no Landlock and the config does not accept it."""
    if not allow_without_landlock and not landlock_available():
        raise SandboxUnavailable(
            "the kernel offers no Landlock (Linux >= 5.13 with landlock among its LSMs), so candidate programs "
            "could read and write files through native code; set "
            f"{NO_LANDLOCK_KEY}: true to run them with the Python audit hook as the only file boundary")


def confine(workdir: str, limits, keep_fds: tuple[int, ...], on_violation, on_unavailable=None) -> dict:
    """Apply every layer to the current (child) process. `on_violation(reason)` must not return, nor
    `on_unavailable(reason)`, called when the kernel refuses Landlock and the limits require it."""
    facts: dict[str, object] = {}
    # Close every inherited descriptor but ours (log files, checkpoints, sockets of the parent).
    keep = sorted(set(keep_fds) | {0, 1, 2})
    start = 3
    for fd in keep + [resource.getrlimit(resource.RLIMIT_NOFILE)[0]]:
        if fd >= start:
            os.closerange(start, fd)
            start = fd + 1
    boundary = file_boundary(workdir)  # before the working directory changes: it decides what is excluded
    drop_shared_writable_mappings()
    read_roots = list(boundary.readable)
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "OMP_NUM_THREADS": "1", "PATH": "/nonexistent"})
    os.chdir(workdir)
    try:
        facts["network"] = "namespace" if new_network_namespace() else "seccomp (no sockets)"
    except OSError:
        facts["network"] = "seccomp (no sockets)"
    budget = _address_space_now() + limits.memory_mb * 1024 * 1024
    for rlim, value in ((resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
                        (resource.RLIMIT_AS, (budget, budget)),
                        (resource.RLIMIT_FSIZE, (limits.file_mb * 1024 * 1024,) * 2),
                        (resource.RLIMIT_NOFILE, (64, 64)),
                        (resource.RLIMIT_CORE, (0, 0)),
                        (resource.RLIMIT_NPROC, (0, 0))):
        try:
            resource.setrlimit(rlim, value)
        except (ValueError, OSError):
            pass  # e.g. NPROC when the hard limit is lower already; seccomp covers it
    # The kernel's file boundary: after every import the child needs, before the program is loaded.
    from selfdev.sandbox import landlock

    try:
        abi = landlock.restrict(list(boundary.readable), list(boundary.writable), list(boundary.read_files),
                                list(boundary.write_files))
        facts["filesystem"] = f"landlock v{abi}"
    except (OSError, AttributeError) as exc:
        if not limits.allow_without_landlock:
            (on_unavailable or on_violation)(f"Landlock could not be applied ({exc}) and {NO_LANDLOCK_KEY} is false")
        facts["filesystem"] = (f"audit hook only: no Landlock ({exc}); native code can read and write "
                               f"any file the user can ({NO_LANDLOCK_KEY}: true)")
    try:
        facts["syscalls"] = install_seccomp()
    except (OSError, AttributeError) as exc:
        facts["syscalls"] = f"unfiltered ({exc}); audit hook only"
        if facts["network"].startswith("seccomp"):
            facts["network"] = "audit hook (no socket module)"
    workroot = os.path.realpath(workdir)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            if isinstance(path, int):
                on_violation(f"open of inherited file descriptor {path}")
            p = os.path.realpath(os.fsdecode(path))
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                      (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if _under(p, [workroot]):
                return
            if writing:
                on_violation(f"write to {p} outside the candidate's directory")
            if not _under(p, read_roots) or _under(p, ["/proc", "/sys"]):
                on_violation(f"read of {p}")
        elif event in BLOCKED_EVENTS or event.startswith(("ctypes.", "socket.", "subprocess.", "winreg.")):
            on_violation(f"forbidden operation {event}")
        elif event == "import":
            if args and str(args[0]).split(".")[0] in DANGEROUS_MODULES:
                on_violation(f"import of {args[0]}")
        elif event == "sqlite3.connect":  # SQLite opens its file in C: no "open" event
            db = args[0] if args else ""
            if isinstance(db, (str, bytes)) and os.fsdecode(db) not in ("", ":memory:"):
                p = os.path.realpath(os.fsdecode(db))
                if not _under(p, [workroot]):
                    on_violation(f"sqlite3.connect to {p} outside the candidate's directory")
        elif event in FS_EVENTS:
            for a in args:
                if isinstance(a, (str, bytes)) and not _under(os.path.realpath(os.fsdecode(a)), [workroot]):
                    on_violation(f"{event} on {os.fsdecode(a)} outside the candidate's directory")
        elif event in READ_EVENTS:
            target = args[0] if args else "."
            if isinstance(target, (str, bytes)):
                p = os.path.realpath(os.fsdecode(target))
                if not (_under(p, [workroot]) or (_under(p, read_roots) and not _under(p, ["/proc", "/sys"]))):
                    on_violation(f"{event} of {p}")

    sys.addaudithook(hook)
    facts["audit_hook"] = True
    return facts


def _address_space_now() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
