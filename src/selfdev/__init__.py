"""selfdev: an open implementation of Self-Developing (Ishibashi et al., NAACL 2025).

An LLM (the *algorithm factory*) writes model-merging algorithms; each one is run on the task
vectors of expert models and scored by the accuracy of the merged model on a math dev set.
"""

import contextlib
import os
import platform

__version__ = "0.1.0"

# The same numbers on every x86-64 machine of one vendor: torch picks its vector kernels (ATen), MKL its
# BLAS code path and oneDNN its ISA by the CPU it finds, so an AVX-512 machine and an AVX2 one train
# different toy worlds from the same seed. Pinning all three to AVX2 (which every x86-64 server of the
# last decade has) makes them compute alike; MKL's STRICT mode also makes its results independent of the
# thread count (without it an Intel Xeon trained different weights at 1 and 2 threads). Measured with
# benchmarks/cpu_pinning.py (M0 of commit b3978cd, 100 steps, AMD EPYC Zen 4, idle): this setting 175.7
# ms/step, MKL_CBWR=AVX2 191.9, COMPATIBLE 355 (1.85x slower) -- and no setting, COMPATIBLE included,
# gives the digests an Intel Sapphire Rapids printed, so AMD and Intel CPUs train different worlds
# (docs/worlds.md, "Which machines compute the same numbers"). Set before torch is imported (every workflow script and
# the CLI import selfdev first); a value already in the environment wins, and SELFDEV_NATIVE_CPU=1 leaves
# the libraries to choose (faster on AVX-512, not reproducible across CPUs).
PINNED_CPU_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# The keys set here, not by the user: `unpinned_cpu_env` takes these (and only these) away again.
PINNED_HERE: tuple[str, ...] = ()
if platform.machine() in ("x86_64", "AMD64") and os.environ.get("SELFDEV_NATIVE_CPU") != "1":
    PINNED_HERE = tuple(k for k in PINNED_CPU_ENV if k not in os.environ)
    for _key, _value in PINNED_CPU_ENV.items():
        os.environ.setdefault(_key, _value)


@contextlib.contextmanager
def unpinned_cpu_env(**extra: str):
    """The environment without the pinning above (and with `extra` set) while the block runs, for the
    processes it starts; everything is restored after.

    vLLM's CPU workers (spawned fresh, so they read the environment anew) need oneDNN's native ISA: its
    bf16 linear layers cannot be built under ONEDNN_MAX_CPU_ISA=AVX2 (an Intel AMX CPU killed the worker
    with SIGILL; this project's AMD EPYC fell back to torch's slower linear), and pinning buys nothing
    there: a vLLM worker neither trains nor scores the toy world bit for bit. A value the user set stays."""
    # A worker that imports selfdev (the weight-swap extension) must not pin again: SELFDEV_NATIVE_CPU=1.
    changed = {*PINNED_HERE, "SELFDEV_NATIVE_CPU", *extra}
    saved = {k: os.environ[k] for k in changed if k in os.environ}
    for k in PINNED_HERE:
        os.environ.pop(k, None)
    os.environ.update(SELFDEV_NATIVE_CPU="1", **extra)
    try:
        yield
    finally:
        for k in changed:
            os.environ.pop(k, None)
        os.environ.update(saved)
