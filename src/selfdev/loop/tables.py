"""The Self-Developing loop's data steps: candidates -> executable -> scores -> pairs -> summary.

Every artifact is a parquet or jsonl file with a `schema_version` column/field (see docs/workflow.md,
"Loop artifacts"). Functions here are pure over tables (lists of dicts) plus thin I/O helpers.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from selfdev.loop.factory import extract_body, program_from
from selfdev.io import read_jsonl, write_jsonl
from selfdev.sandbox.program import CandidateRejected, static_check

CANDIDATES_V = "selfdev.candidates.v2"
EXECUTABLE_V = "selfdev.executable.v2"
SCORES_V = "selfdev.scores.v3"
PAIRS_V = "selfdev.pairs.v1"
SUMMARY_V = "selfdev.summary.v1"


# --- step 1: candidates ---------------------------------------------------------------------------
CANDIDATE_COLUMNS = ("candidate_id", "iteration", "temperature", "top_p", "prompt_id", "factory", "completion",
                     "body", "code", "gen_seconds", "parents")


def candidate_rows(completions: Sequence[tuple[str, float]], prompt: str, prompt_id: str, iteration: int,
                   temperature: float, top_p: float, factory: str, run: str = "dpo-s0",
                   parents: Sequence[Sequence[str]] | None = None) -> list[dict]:
    """Rows of candidates.parquet; ids `<arm>-s<seed>-it<iteration>-<index>` are unique in a study.
    `prompt` is the base prompt (the program is it plus the body); `parents` per row: the candidate
    ids an evolve prompt showed (JSON list; empty for the base prompt)."""
    rows = []
    for i, (completion, secs) in enumerate(completions):
        body = extract_body(completion)
        rows.append({"candidate_id": f"{run}-it{iteration}-{i:05d}", "iteration": iteration, "temperature": temperature,
                     "top_p": top_p, "prompt_id": prompt_id, "factory": factory, "completion": completion,
                     "body": body, "code": program_from(prompt, body) if body.strip() else "",
                     "gen_seconds": secs, "parents": json.dumps(list(parents[i]) if parents else [])})
    return rows


# --- step 2: executable ---------------------------------------------------------------------------
EXECUTABLE_COLUMNS = ("candidate_id", "iteration", "code_hash", "status", "executable", "category", "reason",
                      "probe_seconds", "first_candidate_id", "isolation", "behaviour", "algorithm", "signature",
                      "novel")


@dataclass
class Behaviours:
    """Programs told apart by what they compute (their probe signature), not by their text.

    `behaviour`: same outputs on the world's expert count (same merged model, so the same score);
    `algorithm`: same outputs for every expert count probed. Each is named by the candidate id of the
    first program that showed it; `earlier` rows (scored in earlier iterations) come first."""

    n_experts: int
    behaviours: list[tuple[str, dict]]
    algorithms: list[tuple[str, dict]]

    @classmethod
    def from_scores(cls, n_experts: int, tables: Iterable[Sequence[dict]]) -> "Behaviours":
        known, algorithms = cls(n_experts, [], []), set()
        for rows in tables:
            for r in rows:
                if r["status"] == "new" and r.get("executable") and r.get("signature"):
                    sig = json.loads(r["signature"])
                    known.behaviours.append((r["behaviour"], sig))
                    if r["algorithm"] not in algorithms:
                        algorithms.add(r["algorithm"])
                        known.algorithms.append((r["algorithm"], sig))
        return known

    def classify(self, candidate_id: str, sig: dict) -> tuple[str, str, bool]:
        """(behaviour id, algorithm id, whether the behaviour is new); a new one is remembered."""
        from selfdev.sandbox.probe import same_algorithm, same_behaviour

        beh = next((b for b, s in self.behaviours if same_behaviour(s, sig, self.n_experts)), None)
        alg = next((a for a, s in self.algorithms if same_algorithm(s, sig)), None)
        if beh is None:
            self.behaviours.append((candidate_id, sig))
        if alg is None:
            self.algorithms.append((candidate_id, sig))
        return beh or candidate_id, alg or candidate_id, beh is None


def filter_candidates(candidates: Sequence[dict], seen: dict[str, dict], check, allowed_imports,
                      known: Behaviours) -> list[dict]:
    """Parse, normalise, deduplicate (within the iteration and against `seen`, the rows of programs
    scored in earlier iterations by code hash), probe each new program with `check(code) -> Verdict`,
    then deduplicate by behaviour against `known`.

    status: `empty` (no body), `new` (probed now, a behaviour not seen before: scored), `duplicate`
    (same code earlier in this iteration), `seen_before` (same code scored in an earlier iteration;
    its score is reused), `same_behaviour` (probed now, new code but the same outputs as the
    program `first_candidate_id`: its score is reused)."""
    out, first_here = [], {}
    for c in candidates:
        row = {"candidate_id": c["candidate_id"], "iteration": c["iteration"], "code_hash": None,
               "first_candidate_id": None, "probe_seconds": 0.0, "isolation": None, "behaviour": None,
               "algorithm": None, "signature": None}
        if not c["body"].strip():
            out.append({**row, "status": "empty", "executable": False, "category": "syntax",
                        "reason": "the factory wrote no function body"})
            continue
        try:
            report = static_check(c["code"], allowed_imports)
        except CandidateRejected as exc:
            out.append({**row, "status": "new", "executable": False, "category": exc.category, "reason": exc.reason})
            continue
        h = report.code_hash
        row["code_hash"] = h
        if h in first_here:
            prior = first_here[h]
            out.append({**row, "status": "duplicate", "executable": prior["executable"], "category": prior["category"],
                        "reason": prior["reason"], "first_candidate_id": prior["candidate_id"],
                        "behaviour": prior["behaviour"], "algorithm": prior["algorithm"]})
            continue
        if h in seen:
            prior = seen[h]
            row.update(status="seen_before", executable=True, category="ok", reason="",
                       first_candidate_id=prior["candidate_id"], behaviour=prior["behaviour"],
                       algorithm=prior["algorithm"], signature=prior["signature"])
        else:
            verdict = check(c["code"])
            row.update(status="new", executable=verdict.executable, category=verdict.category, reason=verdict.reason,
                       probe_seconds=verdict.seconds, isolation=json.dumps(verdict.isolation))
            if verdict.executable:
                sig = verdict.info["signature"]
                beh, alg, fresh = known.classify(c["candidate_id"], sig)
                row.update(behaviour=beh, algorithm=alg, signature=json.dumps(sig))
                if not fresh:
                    row.update(status="same_behaviour", first_candidate_id=beh)
        first_here[h] = row
        out.append(row)
    return out


def known_programs(prompt: str, library: Sequence[str]) -> list[str]:
    """Programs the factory has been shown: the warm-up library's bodies and each example function of
    the prompt (called from `merge`), as whole programs of the prompt."""
    import ast

    # An example that takes the context (selfdev.params) is called with it; a building block the prompt
    # imports from selfdev_blocks (ties_merge, tsv_merge) with its defaults.
    tree = ast.parse(prompt + "\n    pass\n")
    examples = [(n.name, ", context" if len(n.args.posonlyargs + n.args.args) > 1 else "")
                for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "merge"]
    examples += [(a.asname or a.name, "") for n in tree.body
                 if isinstance(n, ast.ImportFrom) and n.module == "selfdev_blocks" for a in n.names]
    return [program_from(prompt, b) for b in library] + [program_from(prompt, f"    return {name}(task_vectors{ctx})")
                                                          for name, ctx in examples]


def mark_novel(rows: Sequence[dict], known: Sequence[dict], n_experts: int) -> list[dict]:
    """`novel` on each executable row: its behaviour differs from every known program's signature
    (`known_programs`, probed); None where not executable."""
    from selfdev.sandbox.probe import same_behaviour

    out = []
    for r in rows:
        novel = None
        if r["executable"] and r.get("signature"):
            sig = json.loads(r["signature"])
            novel = not any(same_behaviour(sig, k, n_experts) for k in known)
        out.append({**r, "novel": novel})
    return out


# --- step 3: scores -------------------------------------------------------------------------------
SCORE_COLUMNS = ("candidate_id", "iteration", "code_hash", "status", "executable", "category", "reason",
                 "dev_accuracy", "per_skill", "score_seconds", "body", "code", "factory", "scored_in_iteration",
                 "behaviour", "algorithm", "signature", "dev_correct", "dev_evaluated", "dev_problems", "partial")


def programs_to_score(candidates: Sequence[dict], executable: Sequence[dict]) -> list[dict]:
    """The new executable programs of an iteration (one per code hash)."""
    by_id = {c["candidate_id"]: c for c in candidates}
    return [{**by_id[e["candidate_id"]], **e} for e in executable if e["status"] == "new" and e["executable"]]


def assemble_scores(executable: Sequence[dict], candidates: Sequence[dict], earlier: Sequence[Sequence[dict]],
                    new_rows: Sequence[dict]) -> list[dict]:
    """scores.parquet in the executable table's order: the rows scored now (`new_rows`, status new), and
    for a program seen before (same code) or behaving like one scored already (this iteration or
    earlier), a copy of that program's score under its own id, status and text."""
    by_id = {c["candidate_id"]: c for c in candidates}
    new_by_id = {r["candidate_id"]: r for r in new_rows}
    by_hash = earliest_scores(earlier)
    scored_by_id = {r["candidate_id"]: r for rows in earlier for r in rows if r["status"] == "new"}
    scored_by_id.update(new_by_id)
    rows = []
    for e in executable:
        if e["status"] == "new" and e["executable"]:
            rows.append(new_by_id[e["candidate_id"]])
            continue
        if e["status"] == "seen_before":
            prior = by_hash.get(e["code_hash"])
        elif e["status"] == "same_behaviour":
            prior = scored_by_id.get(e["first_candidate_id"])
        else:
            continue
        if prior is None:
            raise ValueError(f"{e['candidate_id']}: the program it repeats ({e['first_candidate_id']}) has no score")
        c = by_id[e["candidate_id"]]
        rows.append({**{k: prior.get(k) for k in SCORE_COLUMNS}, "candidate_id": e["candidate_id"],
                     "iteration": e["iteration"], "code_hash": e["code_hash"], "status": e["status"],
                     "body": c["body"], "code": c["code"], "factory": c["factory"], "score_seconds": 0.0,
                     "signature": e["signature"]})
    return rows


def earliest_scores(tables: Iterable[Sequence[dict]]) -> dict[str, dict]:
    """code hash -> the row where that program was first scored (executable rows only)."""
    out: dict[str, dict] = {}
    for rows in tables:
        for r in rows:
            if r["status"] == "new" and r["code_hash"] and r["code_hash"] not in out:
                out[r["code_hash"]] = r
    return out


def race_pools(executable: Sequence[dict], earlier: Sequence[Sequence[dict]], *, p_w: float, min_chosen: int,
               earlier_top: int, top_k: int) -> list[tuple[int, list[int]]]:
    """What racing must keep exact in one iteration's scoring (selfdev.scoring.racing.Race.pools):
    the run's `top_k` over every iteration (the study's top programs per arm and seed), starting from
    the full correct counts of the programs scored in earlier iterations, and this iteration's chosen
    programs (`select_pairs`' count for this many behaviours, or `earlier_top`: later iterations carry
    that many forward). Programs scored before this iteration are one per behaviour already."""
    behaviours = {behaviour_of(e) for e in executable if e["executable"]}
    n = len(behaviours)
    k_iter = max(min(n - 1, max(min_chosen, math.ceil(p_w * n))), earlier_top, 1)
    known = [r["dev_correct"] for rows in earlier for r in rows
             if r["status"] == "new" and r.get("executable") and r.get("dev_correct") is not None
             and not r.get("partial")]
    return [(top_k, known), (k_iter, [])]


def evaluations_saved(scores: Sequence[dict]) -> dict:
    """Problem evaluations of the programs scored in this table (status new) against exhaustive scoring."""
    new = [r for r in scores if r["status"] == "new" and r.get("executable") and r.get("dev_problems")]
    done = sum(r["dev_evaluated"] for r in new)
    full = sum(r["dev_problems"] for r in new)
    return {"scored_now": len(new), "partial": sum(bool(r.get("partial")) for r in new), "dev_evaluations": done,
            "dev_evaluations_exhaustive": full, "dev_evaluations_saved": 1 - done / full if full else 0.0}


# --- step 4: preference pairs ---------------------------------------------------------------------
@dataclass(frozen=True)
class PairSpec:
    """The pairs rule's settings (config `loop.*`; defaults live in the schema only)."""

    p_w: float
    p_l: float
    min_chosen: int
    min_rejected: int
    earlier_top: int
    max_pairs: int
    seed: int

    @classmethod
    def from_config(cls, loop: dict, seed: int) -> "PairSpec":
        return cls(loop["p_w"], loop["p_l"], loop["min_chosen"], loop["min_rejected"], loop["earlier_top"],
                   loop["max_pairs"], seed)


def behaviour_of(row: dict) -> str:
    """What identifies a program: its behaviour (what it computes), or its code for rows without one."""
    return row.get("behaviour") or row["code_hash"]


def _ranked(rows: Sequence[dict]) -> list[dict]:
    """Scored, executable rows, one per behaviour (the program that first showed it where present,
    else the first row), best first; ties broken by behaviour id (deterministic)."""
    best: dict[str, dict] = {}
    for r in rows:
        if r.get("executable") and r.get("dev_accuracy") is not None and r.get("code_hash"):
            key = behaviour_of(r)
            if key not in best or r["candidate_id"] == key:
                best[key] = r
    return sorted(best.values(), key=lambda r: (-r["dev_accuracy"], behaviour_of(r)))


def chosen_and_rejected(current: Sequence[dict], earlier: Sequence[Sequence[dict]], spec: PairSpec,
                        iteration: int) -> tuple[list[dict], list[dict]]:
    """chosen = top p_w of this iteration (at least `min_chosen`) plus, from iteration 2, the top
    `earlier_top` of every earlier iteration; rejected = bottom p_l (at least `min_rejected`); each
    set holds distinct behaviours (one program per behaviour). Under racing, a dropped program ranks
    by its partial estimate: never among the chosen (below the bar), possibly among the rejected."""
    ranked = _ranked(current)
    n = len(ranked)
    if n < 2:
        return [], []
    k_w = min(n - 1, max(spec.min_chosen, math.ceil(spec.p_w * n)))
    k_l = min(n - k_w, max(spec.min_rejected, math.ceil(spec.p_l * n)))
    chosen = ranked[:k_w]
    rejected = ranked[n - k_l:]
    if iteration >= 2:
        seen = {behaviour_of(r) for r in chosen}
        for rows in earlier:
            for r in _ranked(rows)[: spec.earlier_top]:
                if behaviour_of(r) not in seen:
                    chosen.append(r)
                    seen.add(behaviour_of(r))
    return chosen, rejected


def select_pairs(current: Sequence[dict], earlier: Sequence[Sequence[dict]], spec: PairSpec, iteration: int,
                 prompt: str) -> list[dict]:
    """Every (chosen, rejected) of `chosen_and_rejected` with a strictly higher chosen score is a pair;
    at most `max_pairs`, drawn deterministically."""
    chosen, rejected = chosen_and_rejected(current, earlier, spec, iteration)
    pairs = []
    for c in chosen:
        for r in rejected:
            if c["dev_accuracy"] > r["dev_accuracy"] and behaviour_of(c) != behaviour_of(r):
                pairs.append({"prompt": prompt, "chosen": "\n" + c["body"] + "\n", "rejected": "\n" + r["body"] + "\n",
                              "chosen_id": c["candidate_id"], "rejected_id": r["candidate_id"],
                              "chosen_hash": c["code_hash"], "rejected_hash": r["code_hash"],
                              "chosen_score": c["dev_accuracy"], "rejected_score": r["dev_accuracy"],
                              "iteration": iteration})
    if len(pairs) > spec.max_pairs:
        pairs = random.Random(spec.seed).sample(pairs, spec.max_pairs)  # the seed names the iteration
        pairs.sort(key=lambda p: (-p["chosen_score"], p["chosen_hash"], p["rejected_hash"]))
    return pairs


def write_pairs(pairs: Sequence[dict], path: str | Path) -> None:
    write_jsonl([{"schema_version": PAIRS_V, **p} for p in pairs], path)


def read_pairs(path: str | Path) -> list[dict]:
    rows = read_jsonl(path)
    for lineno, row in enumerate(rows, 1):
        if row.get("schema_version") != PAIRS_V or not all(k in row for k in ("prompt", "chosen", "rejected")):
            raise ValueError(f"{path}: row {lineno}: expected a {PAIRS_V} row with prompt/chosen/rejected")
    return rows


# --- summary --------------------------------------------------------------------------------------
def iteration_stats(candidates: Sequence[dict], executable: Sequence[dict], scores: Sequence[dict],
                    pairs: Sequence[dict], dpo_log: dict) -> dict:
    from selfdev.sandbox.probe import layer_aware

    accs = [r["dev_accuracy"] for r in scores if r.get("executable") and r.get("dev_accuracy") is not None]
    unique = {e["code_hash"] for e in executable if e["code_hash"]}
    n_exec = sum(1 for e in executable if e["executable"])
    return {
        "candidates": len(candidates),
        "unique": len(unique),
        # Distinct runnable programs by what they compute: on this world's expert count, and for any count.
        "behaviours": len({e["behaviour"] for e in executable if e["executable"] and e.get("behaviour")}),
        "algorithms": len({e["algorithm"] for e in executable if e["executable"] and e.get("algorithm")}),
        # ... of which behave unlike anything in the prompt or the warm-up library.
        "novel_behaviours": len({e["behaviour"] for e in executable if e["executable"] and e.get("novel")}),
        # ... whose output depends on the parameter's layer or kind (a two-argument program that uses it).
        "layer_aware_behaviours": len({e["behaviour"] for e in executable if e["executable"] and e.get("behaviour")
                                       and e.get("signature") and layer_aware(json.loads(e["signature"]))}),
        "executable": n_exec,
        "executable_rate": n_exec / len(candidates) if candidates else 0.0,
        "new_executable": sum(1 for e in executable if e["executable"] and e["status"] == "new"),
        "scored": len(accs),
        "dev_mean": statistics.fmean(accs) if accs else None,
        "dev_median": statistics.median(accs) if accs else None,
        "dev_max": max(accs) if accs else None,
        **evaluations_saved(scores),
        "pairs": len(pairs),
        "dpo_loss_first": dpo_log.get("loss_first"),
        "dpo_loss_last": dpo_log.get("loss_last"),
        "dpo_skipped": dpo_log.get("skipped"),
        "temperature": candidates[0]["temperature"] if candidates else None,
        "gen_seconds": sum(c["gen_seconds"] for c in candidates),
    }


def best_programs(rows: Sequence[dict], k: int) -> list[dict]:
    """The k best distinct scored programs, best first (ties broken by code hash)."""
    return _ranked(rows)[:k]


# --- after the last iteration: each top program's scale tuned on dev -----------------------------
def scaled_program(code: str, scale: float) -> str:
    """`code` followed by a new `merge` returning `scale` times the original, called as the original
    is (with the parameter's context when it takes one, by the sandbox's rule: a second positional
    argument without a default, or named `context`). Still a plain program: probed, scored, hashed
    and transferred like any other."""
    import ast

    tree = ast.parse(code)
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "merge"][-1]
    positional = fn.args.posonlyargs + fn.args.args
    no_default = len(positional) - len(fn.args.defaults)
    takes_context = len(positional) >= 2 and (no_default >= 2 or positional[1].arg == "context")
    args = "task_vectors, context" if takes_context else "task_vectors"
    return (code.rstrip() + "\n\n\n_unscaled_merge = merge\n\n\n"
            f"def merge({args}):\n    # scale tuned on dev after the loop (loop.tune)\n"
            f"    return {float(scale)!r} * _unscaled_merge({args})\n")


TUNED_SUFFIX = "-x"  # a scaled program's id and behaviour: the original's, then -x<scale>


def original_id(candidate_id: str) -> str:
    """The candidate a program came from: a scaled program's id is `<original>-x<scale>` (tuned_row)."""
    return candidate_id.rsplit(TUNED_SUFFIX, 1)[0]


def tuned_row(prog: dict, scale: float, code: str, code_hash: str | None, signature: str | None, scored: dict) -> dict:
    """A scores row for `prog` scaled by `scale` (`scored`: the scoring fields of that program).
    Its id and behaviour are the original's with `-x<scale>`; its body shows the scale."""
    suffix = f"{TUNED_SUFFIX}{float(scale):g}"
    return {**{k: prog.get(k) for k in SCORE_COLUMNS}, **scored, "candidate_id": prog["candidate_id"] + suffix,
            "code_hash": code_hash, "status": "new", "code": code, "signature": signature,
            "body": f"# {float(scale):g} x the program {prog['candidate_id']} (scale tuned on dev)\n" + prog["body"],
            "behaviour": behaviour_of(prog) + suffix, "algorithm": (prog.get("algorithm") or prog["code_hash"]) + suffix}


def best_program(score_tables: Sequence[Sequence[dict]]) -> dict | None:
    ranked = _ranked([r for rows in score_tables for r in rows])
    return ranked[0] if ranked else None


def summary_markdown(summary: dict) -> str:
    lines = [f"# Self-Developing run summary ({summary.get('run') or 'loop'})", "",
             f"M0 dev {_pct(summary['seed_dev'])}; best Task Arithmetic on dev {_pct(summary['ta_best_dev'])} "
             f"(lambda {summary['ta_best_lambda']}); best single expert {_pct(summary['best_expert_dev'])}.", "",
             "| iter | T | candidates | unique | behaviours | novel | layer-aware | algorithms | executable % | scored "
             "| dropped by racing | dev evals saved % | dev mean | median | max | pairs | DPO loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for it in summary["iterations"]:
        s = it["stats"]
        loss = "skipped" if s["dpo_skipped"] else (f"{s['dpo_loss_first']:.3f} → {s['dpo_loss_last']:.3f}"
                                                   if s["dpo_loss_first"] is not None else "-")
        lines.append(f"| {it['iteration']} | {s['temperature']:.3f} | {s['candidates']} | {s['unique']} | "
                     f"{s.get('behaviours', '-')} | {s.get('novel_behaviours', '-')} | "
                     f"{s.get('layer_aware_behaviours', '-')} | {s.get('algorithms', '-')} | "
                     f"{100 * s['executable_rate']:.1f} | {s['scored']} | {s.get('partial', '-')} | "
                     f"{_pct(s.get('dev_evaluations_saved'))} | {_pct(s['dev_mean'])} | "
                     f"{_pct(s['dev_median'])} | {_pct(s['dev_max'])} | {s['pairs']} | {loss} |")
    best = summary.get("best")
    lines += ["", "## Best algorithm so far", ""]
    if best:
        lines += [f"{best['candidate_id']} (iteration {best['iteration']}, hash {best['code_hash']}): dev "
                  f"{_pct(best['dev_accuracy'])}, {100 * (best['dev_accuracy'] - summary['seed_dev']):+.1f} vs M0, "
                  f"{100 * (best['dev_accuracy'] - summary['ta_best_dev']):+.1f} vs Task Arithmetic's best lambda.",
                  "", "```python", best["body"], "```"]
    else:
        lines.append("No executable program was scored.")
    return "\n".join(lines) + "\n"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def shard_of(items: Sequence[dict], shard: int, shards: int) -> list[dict]:
    """Shard `shard` (0-based) of `shards`: every `shards`-th item, starting at `shard`."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    return list(items[shard::shards])


def gather_shards(tables: Sequence[Sequence[dict]], todo: Sequence[dict], key: str = "candidate_id") -> list[dict]:
    """The shards' rows in `todo`'s order; every item of `todo` must be in exactly one shard (a shard
    written for another set of programs, e.g. before its inputs changed, is refused by name)."""
    by_key: dict = {}
    for table in tables:
        for row in table:
            if row[key] in by_key:
                raise ValueError(f"{key} {row[key]!r} is in two score shards")
            by_key[row[key]] = row
    missing = [item[key] for item in todo if item[key] not in by_key]
    extra = sorted(set(by_key) - {item[key] for item in todo})
    if missing or extra:
        raise ValueError(f"score shards do not match the programs to score: missing {missing[:5]}, unexpected {extra[:5]}")
    return [by_key[item[key]] for item in todo]
