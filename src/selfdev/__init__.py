"""selfdev: an open implementation of Self-Developing (Ishibashi et al., NAACL 2025).

An LLM (the *algorithm factory*) writes model-merging algorithms; each one is run on the task
vectors of expert models and scored by the accuracy of the merged model on a math dev set.
"""

import os
import platform

__version__ = "0.1.0"

# The same numbers on every x86-64 machine: torch picks its vector kernels (ATen), MKL its BLAS code
# path and oneDNN its ISA by the CPU it finds, so an AVX-512 machine and an AVX2 one train different
# toy worlds from the same seed. Pinning all three to AVX2 (which every x86-64 server of the last
# decade has) makes them compute alike. Set before torch is imported (every workflow script and the
# CLI import selfdev first); a value already in the environment wins, and SELFDEV_NATIVE_CPU=1
# leaves the libraries to choose (faster on AVX-512, not reproducible across CPUs).
PINNED_CPU_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
if platform.machine() in ("x86_64", "AMD64") and os.environ.get("SELFDEV_NATIVE_CPU") != "1":
    for _key, _value in PINNED_CPU_ENV.items():
        os.environ.setdefault(_key, _value)
