"""Character data: normalisation, splits, corpora, batch cursors (vocabularies: `tf_rnn.data.vocab`).

Corpora come from `tf_rnn.data.textio` (a file), `tf_rnn.data.text8` (the download) or
`tf_rnn.data.corpora` (a name: `shakespeare`, shipped with the package, or `text8`).

Pure NumPy + standard library (no TensorFlow import), so it is cheap to import and test.
Per-character work is vectorised; bad input raises `DataError` naming the file or
argument and what is wrong with it.

Imports `base` alone; no TensorFlow.
"""

import dataclasses
import math

import numpy as np

from tf_rnn.base.checks import positive_integer
from tf_rnn.base.errors import DataError
from tf_rnn.data import corpora, text8
from tf_rnn.data.textio import load_text
from tf_rnn.data.vocab import Vocabulary

TEXT8_SPLIT = (90_000_000, 5_000_000, 5_000_000)  # train / valid / test characters

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

def normalize_text8(text: str) -> str:
    """Normalises text the way text8 was made.

    ASCII letters are lowercased; each digit becomes its English word between spaces
    ("42" -> "four two"); every other character (punctuation, newlines, non-ASCII
    letters) becomes a space; runs of spaces collapse to one; the ends are stripped.
    Works on the UTF-8 bytes with NumPy: about half a second per 100 MB.
    """
    data = text.encode("utf-8", "surrogatepass")
    for digit, word in enumerate(_DIGITS):
        data = data.replace(str(digit).encode(), f" {word} ".encode())
    table = bytearray(b" " * 256)  # each byte of a multi-byte character becomes a space
    table[ord("a"):ord("z") + 1] = table[ord("A"):ord("Z") + 1] = b"abcdefghijklmnopqrstuvwxyz"
    arr = np.frombuffer(data.translate(bytes(table)), np.uint8)
    space = arr == ord(" ")
    keep = ~space
    keep[1:] |= ~space[:-1]  # a space survives only right after a letter
    return arr[keep].tobytes().strip(b" ").decode("ascii")


def split_text(text, fractions=(0.9, 0.05, 0.05)):
    """Splits a str or id array of length N into consecutive (train, valid, test).

    `fractions` are three proportions in [0, 1] summing to 1 (else ValueError); for
    N = 100M the defaults give exactly TEXT8_SPLIT. DataError if a part would be empty,
    but for a test part of fraction 0 (nanoGPT's 90/10 split: no test text).
    """
    fractions = tuple(fractions)
    if len(fractions) != 3 or not all(0 <= f <= 1 for f in fractions) or \
            abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"Received an invalid value for argument `fractions`, expected three "
                         f"numbers in [0, 1] summing to 1, got {fractions}.")
    n = len(text)
    if fractions[2]:
        a = int(round(n * fractions[0]))
        b = a + int(round(n * fractions[1]))
    else:  # no test part: nanoGPT's prepare.py cut, train = data[:int(n * 0.9)]
        a, b = int(n * fractions[0]), n
    sizes = (a, b - a, n - b)
    if min(sizes[:2]) <= 0 or (fractions[2] and sizes[2] <= 0):
        raise DataError(f"Cannot split {n} characters by fractions {fractions}: the parts "
                        f"(train, valid, test) would have {sizes} characters, and none may "
                        f"be empty. Use a longer corpus.")
    return text[:a], text[a:b], text[b:]


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: == on arrays is ambiguous
class Corpus:
    """An encoded, split corpus and its vocabulary."""

    vocab: Vocabulary
    train: np.ndarray  # int32 ids, shape (N_train,)
    valid: np.ndarray  # int32 ids, shape (N_valid,)
    test: np.ndarray  # int32 ids, shape (N_test,)
    source: str  # a path, or "text8"


def load_corpus(data=None, *, cache_dir=None, vocab="text8", normalize=False, unknown="error",
                download_kwargs=None, progress=True, fractions=(0.9, 0.05, 0.05)) -> Corpus:
    """Loads, encodes and splits a corpus.

    Args:
        data: None or "text8" for text8 (downloaded and cached), a shipped corpus's
            name (`tf_rnn.data.corpora`: "shakespeare"), else a text, .gz or .zip file.
        cache_dir: text8 cache directory; None means `default_cache_dir()`.
        vocab: "text8" (TEXT8_ALPHABET), "corpus" (sorted distinct characters of the
            whole text) or a `Vocabulary` (e.g. one loaded from a work directory).
        normalize: apply `normalize_text8` before encoding.
        unknown: "error" or "space", as in `Vocabulary.encode`.
        download_kwargs: more arguments of `download_text8` (url, expected_size, sha256).
        progress: progress bar while downloading.
        fractions: train / valid / test proportions; a 100M-character text8 is split by
            TEXT8_SPLIT.

    Raises:
        DataError: as `load_text`, `download_text8`, `Vocabulary.encode`, `split_text`.
        ValueError: a bad `vocab`.
    """
    name, data = corpora.resolve(data)
    if data is None:
        path = text8.download_text8(
            cache_dir if cache_dir is not None else text8.default_cache_dir(),
            **{"progress": progress, **(download_kwargs or {})})
        text, source = text8.read_text8(path), "text8"
    else:
        text, source = load_text(data), f"{name} (shipped)" if name else str(data)
    if normalize:
        text = normalize_text8(text)
    if isinstance(vocab, Vocabulary):
        vocabulary = vocab
    elif vocab in ("text8", "corpus"):
        vocabulary = Vocabulary.text8() if vocab == "text8" else Vocabulary.from_text(text)
    else:
        raise ValueError(f"Received an invalid value for argument `vocab`, expected 'text8', "
                         f"'corpus' or a Vocabulary, got {vocab!r}.")
    ids = vocabulary.encode(text, unknown=unknown)
    if data is None and len(ids) == sum(TEXT8_SPLIT):
        a, b = TEXT8_SPLIT[0], TEXT8_SPLIT[0] + TEXT8_SPLIT[1]
        parts = ids[:a], ids[a:b], ids[b:]
    else:
        parts = split_text(ids, fractions)
    return Corpus(vocabulary, *parts, source)


class BatchCursors:
    """`batch_size` cursors walking one id array, for truncated BPTT.

    Cursor b starts at b * (N // batch_size). Each `next()` returns num_unrollings + 1
    ids per cursor and then advances every cursor by num_unrollings, so each window starts
    with the previous window's last id: with inputs window[:, :-1] and targets
    window[:, 1:], a state carried across windows sees its row's text with no gap.
    Indices wrap around the end of the array.

    Args:
        ids: integer ids, shape (N,); DataError if not 1-D integers or N < B * (T + 1).
        batch_size: number of cursors B (a positive int, else ValueError).
        num_unrollings: time steps T per window (a positive int, else ValueError).
    """

    def __init__(self, ids, batch_size, num_unrollings):
        batch_size = positive_integer("batch_size", batch_size)
        num_unrollings = positive_integer("num_unrollings", num_unrollings)
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
            raise DataError(f"Received an invalid value for argument `ids`, expected a 1-D "
                            f"integer array, got shape {ids.shape} dtype {ids.dtype}.")
        need = batch_size * (num_unrollings + 1)
        if len(ids) < need:
            raise DataError(
                f"A corpus of {len(ids)} characters is shorter than one batch window of "
                f"batch_size x (num_unrollings+1) = {batch_size} x {num_unrollings + 1} = "
                f"{need} characters.")
        self._ids = ids
        self.batch_size, self.num_unrollings = int(batch_size), int(num_unrollings)
        self._segment = len(ids) // self.batch_size
        self._offsets = np.arange(self.num_unrollings + 1, dtype=np.int64)  # (T+1,)
        self._positions = np.arange(self.batch_size, dtype=np.int64) * self._segment  # (B,)

    def next(self) -> np.ndarray:
        """The next window, int32, shape (batch_size, num_unrollings + 1)."""
        index = (self._positions[:, None] + self._offsets) % len(self._ids)  # (B, T+1)
        self._positions = (self._positions + self.num_unrollings) % len(self._ids)
        return self._ids[index].astype(np.int32, copy=False)

    @property
    def steps_per_epoch(self) -> int:
        """Windows per pass over the data: (N // batch_size) // num_unrollings, at least 1."""
        return max(1, self._segment // self.num_unrollings)

    def get_state(self) -> np.ndarray:
        """Where each cursor's next window starts, int64, shape (batch_size,)."""
        return self._positions.copy()

    positions = property(get_state)

    def set_state(self, positions) -> None:
        """Restores `get_state` output; DataError on a wrong shape, dtype or range."""
        arr = np.asarray(positions)
        if arr.shape != (self.batch_size,) or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"Received an invalid value for argument `positions`, expected "
                            f"integers of shape ({self.batch_size},), got shape {arr.shape} "
                            f"dtype {arr.dtype}.")
        if ((arr < 0) | (arr >= len(self._ids))).any():
            raise DataError(f"Received an invalid value for argument `positions`, expected "
                            f"integers in [0, {len(self._ids)}), got {arr.tolist()}.")
        self._positions = arr.astype(np.int64)


def training_cursors(config, corpus) -> BatchCursors:
    """The cursors of a run's training split (`config.batch_size` x `num_unrollings`)."""
    try:
        return BatchCursors(corpus.train, config.batch_size, config.num_unrollings)
    except DataError as err:  # the one DataError of well-formed ids: too short
        raise DataError(
            f"The training split (90%) of {corpus.source} is too short. {err} Use a longer "
            f"corpus, or lower --set batch_size / --set num_unrollings.") from None


def total_steps(config, cursors) -> int:
    """The run's last step: `epochs` passes over the cursors' text, else `steps`."""
    if config.epochs > 0:
        return max(1, math.ceil(config.epochs * cursors.steps_per_epoch))
    return config.steps
