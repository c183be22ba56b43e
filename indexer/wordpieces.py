"""The model's tokenizer read straight from its tokenizer.json with the `tokenizers` library.

transformers' AutoTokenizer gives the same word pieces but imports torch on the way, the larger part of a
query process's start (docs/performance.md); folders without a tokenizer.json use AutoTokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path


class WordPieces:
    """The subset of a transformers tokenizer's interface the embedder and the benches call."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        config = _json(folder / "tokenizer_config.json")
        self._plain = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The file may carry the padding and truncation of its training run: batches are padded by the embedder.
        self._plain.no_padding()
        self._plain.no_truncation()
        self._cut: dict[int, object] = {}
        self.folder = folder
        self.model_max_length = int(config.get("model_max_length") or 512)
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self._plain.token_to_id(pad) if pad else None

    @property
    def model_input_names(self) -> list[str]:
        """The model's input names, as transformers names them (needed only to export the model)."""
        from transformers import AutoTokenizer

        return list(AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True).model_input_names)

    def _truncating(self, max_length: int):  # noqa: ANN202 - a tokenizers.Tokenizer
        if max_length not in self._cut:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self._plain.to_str())
            tok.no_padding()
            tok.enable_truncation(max_length)  # special tokens included, as transformers counts them
            self._cut[max_length] = tok
        return self._cut[max_length]

    def __call__(self, texts: str | list[str], add_special_tokens: bool = True, truncation: bool = False,
                 max_length: int | None = None) -> dict[str, list]:
        """{"input_ids": ids} of one text or of each of a list, as a transformers tokenizer returns them."""
        tok = self._truncating(max_length or self.model_max_length) if truncation else self._plain
        if isinstance(texts, str):
            return {"input_ids": tok.encode(texts, add_special_tokens=add_special_tokens).ids}
        return {"input_ids": [e.ids for e in tok.encode_batch(texts, add_special_tokens=add_special_tokens)]}


def load_tokenizer(folder: Path):  # noqa: ANN201 - WordPieces or a transformers tokenizer
    """The model's tokenizer: WordPieces where the folder has a tokenizer.json, else transformers' own."""
    if (folder / "tokenizer.json").is_file():
        return WordPieces(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
