"""OpenAI CLIP's byte-level BPE tokenizer, giving open_clip's token ids without importing open_clip.

The vocabulary is ``bpe_vocab_48894.txt.gz`` beside this file: the header line and the first 48,894 merges of
OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (the only merges CLIP's 49,408-token vocabulary uses; MIT licence,
see ``VOCAB_LICENSE.txt``). Ids: 256 byte symbols, the same 256 ending a word (``</w>``), one per merge in
rank order, then ``<start_of_text>`` (49406) and ``<end_of_text>`` (49407).

Text is cleaned as CLIP cleans it (ftfy's ``fix_text``, HTML entities unescaped twice, whitespace runs collapsed,
lower case), split by CLIP's pattern (contractions, letter runs, single digits, runs of other symbols) and each
piece's UTF-8 bytes are merged pairwise by rank. ftfy (≈0.15 s to import) is only imported for text that it could
change: printable ASCII without ``&`` is returned unchanged by ``fix_text``, and most prompts are such text.
"""

from __future__ import annotations

import gzip
import html
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import regex

if TYPE_CHECKING:
    import torch

VOCAB_FILE = Path(__file__).with_name("bpe_vocab_48894.txt.gz")
NUM_MERGES = 48894                    # merges of the OpenAI vocabulary CLIP uses (49408 - 2 specials - 2 × 256 bytes)
START, END = "<start_of_text>", "<end_of_text>"
WORD_END = "</w>"                     # suffix of a word's last symbol
# Contractions, letter runs, single digits, runs of anything else but spaces; the two special tokens stay whole.
_SPLIT = regex.compile(
    rf"{START}|{END}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE
)


def byte_table() -> dict[int, str]:
    """Byte → the one-character symbol standing for it, in id order: bytes that are printable Latin-1 characters
    ('!'…'~', '¡'…'¬', '®'…'ÿ') stand for themselves and come first; the 68 others (controls, space, soft hyphen)
    follow in byte order as the characters U+0100, U+0101, …, so that no symbol is whitespace."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shown = set(printable)
    others = [b for b in range(256) if b not in shown]
    return {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(others)}


def clean(text: str) -> str:
    """CLIP's text cleaning: ftfy's ``fix_text``, HTML entities unescaped twice, whitespace collapsed, lower case."""
    if not (text.isascii() and text.isprintable() and "&" not in text):
        import ftfy  # only for text it may change (see the module docstring)

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return " ".join(text.split()).lower()


class BPETokenizer:
    """Prompts → token ids ``[B, context_length]``, the ids open_clip's ``SimpleTokenizer`` gives.

    >>> tok = get_tokenizer()
    >>> tok.encode("The person is smiling.")      # no start/end tokens
    [518, 2533, 533, 9200, 269]
    """

    def __init__(self, vocab_file: str | Path = VOCAB_FILE) -> None:
        lines = gzip.decompress(Path(vocab_file).read_bytes()).decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
        if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{vocab_file} does not hold {NUM_MERGES} BPE merges")
        self.byte_to_symbol = byte_table()
        self.symbol_to_byte = {s: b for b, s in self.byte_to_symbol.items()}
        symbols = list(self.byte_to_symbol.values())
        vocab = symbols + [s + WORD_END for s in symbols] + ["".join(m) for m in merges] + [START, END]
        self.encoder: dict[str, int] = {token: i for i, token in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.start_id, self.end_id = self.encoder[START], self.encoder[END]
        self.vocab_size = len(vocab)
        self._words: dict[str, list[int]] = {START: [self.start_id], END: [self.end_id]}

    def _merge(self, piece: str) -> list[int]:
        """Ids of one pre-tokenized piece (already mapped to byte symbols): merge the lowest-ranked adjacent pair,
        every occurrence left to right, until no adjacent pair is a known merge."""
        word = [*piece[:-1], piece[-1] + WORD_END]
        while len(word) > 1:
            ranked = [(self.ranks.get(pair, NUM_MERGES), pair) for pair in zip(word, word[1:])]
            rank, (a, b) = min(ranked, key=lambda r: r[0])
            if rank == NUM_MERGES:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return [self.encoder[s] for s in word]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without the start and end tokens."""
        ids: list[int] = []
        for piece in _SPLIT.findall(clean(text)):
            cached = self._words.get(piece)
            if cached is None:
                symbols = "".join(self.byte_to_symbol[b] for b in piece.encode("utf-8"))
                cached = self._words[piece] = self._merge(symbols)
            ids.extend(cached)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids; word ends become spaces, start/end tokens are written out."""
        symbols = "".join(self.decoder[int(i)] for i in ids)
        data = bytes(self.symbol_to_byte[c] for c in symbols)  # the specials' characters are printable ASCII
        return data.decode("utf-8", errors="replace").replace(WORD_END, " ")

    def __call__(self, texts: str | list[str], context_length: int = 77) -> "torch.Tensor":
        """``[B, context_length]`` long ids: start token, the text's ids, end token, zeros. Longer texts are cut to
        ``context_length`` tokens whose last one is replaced by the end token (as open_clip does)."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > context_length:
                ids = ids[:context_length]
                ids[-1] = self.end_id
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


@lru_cache(maxsize=1)
def get_tokenizer() -> BPETokenizer:
    """The shared tokenizer (the vocabulary is read once per process, ≈0.1 s)."""
    return BPETokenizer()
