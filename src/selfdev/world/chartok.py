"""A character-level tokenizer for tiny test models (the toy world uses `wordtok`), built with
`tokenizers` so it saves and loads like any Hugging Face tokenizer (`save_pretrained` /
`AutoTokenizer.from_pretrained`)."""

from __future__ import annotations

import string

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
ALPHABET = string.ascii_letters + string.digits + " .,?!:;'\"+-*/=#$%()<>\n"


def build_char_tokenizer(alphabet: str = ALPHABET):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(dict.fromkeys(alphabet)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Every character is its own token; Fuse joins them back without the spaces WordLevel would add.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
    )
    return tok
