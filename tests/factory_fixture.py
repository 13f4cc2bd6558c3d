"""A tiny, real factory for tests: a character-level Llama trained to write the library's bodies
under a short prompt, so sampling yields valid, varied programs in seconds."""

import string
from pathlib import Path

MICRO_PROMPT = 'import torch\n\n\ndef merge(task_vectors):\n    """Merge the task vectors."""'


def build_tiny_factory(out_dir: Path, steps: int = 300, seed: int = 0, heads: int = 4) -> Path:
    """`heads` 2 gives head size 32, the smallest vLLM's CPU attention takes."""
    import random

    import torch

    from selfdev.world.chartok import build_char_tokenizer
    from selfdev.loop.library import EXAMPLE_BODIES
    from selfdev.lm import TinyLlamaSpec, build_tiny_llama

    torch.manual_seed(seed)
    tok = build_char_tokenizer(string.printable)
    model = build_tiny_llama(TinyLlamaSpec(64, 192, 2, heads, 1024), tok, seed)
    # Short bodies only: a tiny character-level model learns them in a few hundred steps. Only bodies
    # that run under its prompt: the one-argument `merge` without imports, so none that reads a context or
    # calls a building block (ties_merge, tsv_merge) or math.
    bodies = [b for b in EXAMPLE_BODIES
              if "math." not in b and "context" not in b and "_merge(" not in b and len(b) <= 110]
    seqs = [tok(MICRO_PROMPT + "\n" + b + "\n", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            for b in bodies]
    plen = len(tok(MICRO_PROMPT, add_special_tokens=False)["input_ids"])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    rng = random.Random(seed)
    model.train()
    for _ in range(steps):
        batch = [seqs[rng.randrange(len(seqs))] for _ in range(8)]
        width = max(map(len, batch))
        ids = torch.full((8, width), tok.pad_token_id)
        labels = torch.full((8, width), -100)
        for i, s in enumerate(batch):
            ids[i, : len(s)] = torch.tensor(s)
            labels[i, plen : len(s)] = torch.tensor(s[plen:])
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    (out_dir / "prompt.txt").write_text(MICRO_PROMPT + "\n")
    return out_dir
