"""Static checks and loading of a candidate merging program (Python source defining `merge`).

The static check runs in the trusted parent before anything executes: it catches syntax errors,
a missing `merge`, and imports outside the allow-list. Loading (`load_merge`) happens only inside
the sandboxed child, with an `__import__` that enforces the same allow-list at run time (so
`__import__('os')` or an import hidden in a helper is refused too).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable

DEFAULT_ALLOWED_IMPORTS = ("torch", "math", "numpy", "functools", "itertools", "typing", "selfdev_blocks")


class CandidateRejected(Exception):
    """A program that cannot be run; `category` is the verdict's reason category."""

    def __init__(self, category: str, reason: str):
        super().__init__(reason)
        self.category = category
        self.reason = reason


@dataclass(frozen=True)
class StaticReport:
    code: str  # normalised source (ast.unparse), the unit of deduplication
    code_hash: str


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def static_check(source: str, allowed_imports: Iterable[str] = DEFAULT_ALLOWED_IMPORTS) -> StaticReport:
    """Parse, check imports and the `merge` signature; raise CandidateRejected with a category."""
    allowed = set(allowed_imports)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CandidateRejected("syntax", f"line {exc.lineno}: {exc.msg}") from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise CandidateRejected("syntax", f"{type(exc).__name__}: {exc}") from None
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise CandidateRejected("import", "relative imports are not allowed")
            names = [node.module or ""]
        for name in names:
            if _top(name) not in allowed:
                raise CandidateRejected("import", f"import of {name!r} is not allowed (allowed: {sorted(allowed)})")
    merges = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "merge"]
    if not merges:
        raise CandidateRejected("no_merge", "no top-level function `merge(task_vectors)` defined")
    fn = merges[-1]
    if isinstance(fn, ast.AsyncFunctionDef):
        raise CandidateRejected("no_merge", "`merge` must be a plain function, not async")
    positional = fn.args.posonlyargs + fn.args.args
    required = len(positional) - len(fn.args.defaults)
    if not positional and fn.args.vararg is None:
        raise CandidateRejected("no_merge", "`merge` must take the list of task vectors as its first argument")
    if required > 2 or any(d is None for d in fn.args.kw_defaults):
        raise CandidateRejected("no_merge", "`merge` must be callable as merge(task_vectors) or merge(task_vectors, "
                                            "context); other arguments need defaults")
    code = ast.unparse(tree)
    return StaticReport(code=code, code_hash=code_hash(code))


def code_hash(normalised_code: str) -> str:
    return hashlib.sha256(normalised_code.encode()).hexdigest()[:16]


def normalise(source: str) -> str:
    """Canonical text of a program (comments and layout dropped) for deduplication."""
    return ast.unparse(ast.parse(source))


def _guarded_import(allowed: set[str]):
    real_import = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        if level or _top(name) not in allowed:
            raise ImportError(f"import of {name!r} is not allowed")
        return real_import(name, globals, locals, fromlist, level)

    return guarded


def load_merge(source: str, allowed_imports: Iterable[str] = DEFAULT_ALLOWED_IMPORTS) -> Callable:
    """Execute the program's top level and return its `merge`. Only ever call this in a sandbox."""
    allowed = set(allowed_imports)
    static_check(source, allowed)
    safe_builtins = dict(vars(builtins))
    safe_builtins["__import__"] = _guarded_import(allowed)
    namespace = {"__builtins__": safe_builtins, "__name__": "candidate"}
    try:
        exec(compile(source, "<candidate>", "exec"), namespace)
    except CandidateRejected:
        raise
    except ImportError as exc:
        raise CandidateRejected("import", str(exc)) from None
    except BaseException as exc:  # noqa: BLE001 - the program's top level may raise anything
        raise CandidateRejected("exception", f"at load: {type(exc).__name__}: {exc}") from None
    merge = namespace.get("merge")
    if not callable(merge):
        raise CandidateRejected("no_merge", "`merge` is not callable after running the program")
    return merge
