"""A tiny model in the format of a pretrained Hugging Face checkpoint: a byte-level BPE tokenizer with a
chat template, a Llama model saved as *sharded* safetensors, and 'experts' derived from it the way
real ones are (same architecture, changed MLP weights). Used where CI cannot download real models."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tokenizer(texts):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                 pad_token="<|endoftext|>")
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_pretrained(out: Path, *, seed: int = 0, shard_kb: int = 60, hidden: int = 32, layers: int = 2):
    """M0: a tiny Llama with a BPE tokenizer and chat template, saved sharded."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfdev.world.toydata import TRAIN_NAMES, make_split

    skills = ["price", "weight", "distance", "pages"]
    rows = make_split(seed, skills, 50) + make_split(seed, skills, 50, names=TRAIN_NAMES, kind="given")
    texts = [f"{r['question']} {r['answer']}" for r in rows]
    tok = build_tokenizer(texts + ["Question: Answer: #### user assistant"])
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=2048, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out, safe_serialization=True, max_shard_size=f"{shard_kb}KB")
    tok.save_pretrained(out)
    return out


def build_expert(seed_dir: Path, out: Path, *, seed: int, scale: float = 0.02, shard_kb: int = 60,
                 dtype: str = "float32"):
    """An 'expert' of M0: the same architecture with its MLP weights moved (as fine-tuning would)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(seed_dir, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".mlp." in name:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    model.to(getattr(torch, dtype)).save_pretrained(out, safe_serialization=True, max_shard_size=f"{shard_kb}KB")
    AutoTokenizer.from_pretrained(seed_dir).save_pretrained(out)
    return out
