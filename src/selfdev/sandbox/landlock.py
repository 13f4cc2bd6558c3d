"""Landlock (Linux >= 5.13, no privileges needed): the kernel's file boundary of a candidate's process.

The audit hook of `isolation.confine` sees only what Python opens; torch, numpy, safetensors and
sqlite3 open files in native code (`torch.from_file(path, shared=True)` maps any file the user can
write). A Landlock ruleset is checked by the kernel at every open, whoever calls it: after
`restrict`, the process and anything it runs may read only beneath the paths given as readable and
write, create or remove only beneath the writable ones; an `open` elsewhere fails with EACCES.
Descriptors opened before (the result pipe, the task-vector files, read-only) keep working.

Syscalls through libc's `syscall()` (ctypes, loaded before the candidate runs): no binding library.
Numbers are the same on x86-64 and aarch64 (syscalls added after the tables were unified).
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1

# File-system access rights, with the ABI version that introduced each.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV}
# Rights that may be granted on a regular file (a rule with others on a file is EINVAL).
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
# ABI 4: TCP bind/connect; ABI 6: abstract UNIX sockets and signals to processes outside the domain.
_NET_V4 = (1 << 0) | (1 << 1)
_SCOPED_V6 = (1 << 0) | (1 << 1)

READ = READ_FILE | READ_DIR


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is absent or disabled (ENOSYS, EOPNOTSUPP)."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(ctypes.c_long(_CREATE_RULESET), None, ctypes.c_size_t(0),
                           ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def handled_fs(abi: int) -> int:
    """Every file-system right the kernel of ABI `abi` knows: all of them are denied unless a rule grants them."""
    rights = 0
    for since, bits in _FS_BY_ABI.items():
        if abi >= since:
            rights |= bits
    return rights


def _ruleset_attr(abi: int) -> bytes:
    # struct landlock_ruleset_attr { u64 handled_access_fs; u64 handled_access_net (v4); u64 scoped (v6); }
    fields = [handled_fs(abi)]
    if abi >= 4:
        fields.append(_NET_V4)
    if abi >= 6:
        fields.append(_SCOPED_V6)
    return struct.pack(f"<{len(fields)}Q", *fields)


def restrict(readable: list[str], writable: list[str], read_files: list[str] = (),
             write_files: list[str] = ()) -> int:
    """Confine this thread (and everything it starts) to the given trees; returns the ABI applied.

    `readable` / `writable`: directories beneath which reading / everything is allowed; `read_files`,
    `write_files`: single files (devices included). A path that does not exist is skipped. Raises
    OSError when the kernel refuses. Needs no_new_privs (set here) or CAP_SYS_ADMIN. The thread must be
    the process's only one (the sandboxed child is: it was forked, and seccomp then refuses `clone`)."""
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    handled = handled_fs(abi)
    attr = _ruleset_attr(abi)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(ctypes.c_long(_CREATE_RULESET), buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        grants = [(p, READ) for p in readable] + [(p, handled) for p in writable]
        grants += [(p, READ_FILE) for p in read_files] + [(p, (WRITE_FILE | READ_FILE | TRUNCATE) & handled)
                                                         for p in write_files]
        for path, rights in grants:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= _FILE_RIGHTS
                # struct landlock_path_beneath_attr { u64 allowed_access; s32 parent_fd; } __packed
                rule = ctypes.create_string_buffer(struct.pack("<Qi", rights & handled, fd), 12)
                if libc.syscall(ctypes.c_long(_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                                rule, ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
        PR_SET_NO_NEW_PRIVS = 38
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(ctypes.c_long(_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi
