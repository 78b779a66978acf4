"""Vocabularies: an ordered set of characters, a character's position its id.

The lowest module of the data side (data imports it); its errors are
`tf_rnn.base.errors.DataError`.
"""

import json
import pathlib
from collections import Counter

import numpy as np

from tf_rnn.base import files
from tf_rnn.base.errors import DataError

TEXT8_ALPHABET = " abcdefghijklmnopqrstuvwxyz"  # id 0 is the space


def _codepoints(text: str) -> np.ndarray:
    """Code points of `text`, uint32, shape (len(text),), without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class Vocabulary:
    """An ordered set of characters; a character's position is its integer id.

    Args:
        chars: the distinct characters, in id order. DataError if it is not a non-empty
            str or repeats a character.
    """

    def __init__(self, chars: str):
        if not isinstance(chars, str):
            raise DataError(f"Received an invalid value for argument `chars`, expected a str, "
                            f"got {type(chars).__name__}.")
        if not chars:
            raise DataError("Received an invalid value for argument `chars`, expected at least "
                            "one character, got ''.")
        repeated = [c for c, n in Counter(chars).items() if n > 1]
        if repeated:
            raise DataError(f"Received an invalid value for argument `chars`, expected distinct "
                            f"characters, got {len(chars)} that repeat {repeated!r}.")
        self._chars = chars
        self._cps = _codepoints(chars)  # (V,) code point of each id
        # id of each code point, -1 if absent; at least 256 entries so latin-1 text indexes
        # it directly, and the last entry is always -1 (larger code points are clipped to it).
        self._table = np.full(max(256, int(self._cps.max()) + 2), -1, dtype=np.int32)
        self._table[self._cps] = np.arange(len(chars), dtype=np.int32)

    @classmethod
    def text8(cls) -> "Vocabulary":
        """The text8 alphabet: ' ' (id 0) then a-z (ids 1-26)."""
        return cls(TEXT8_ALPHABET)

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        """The sorted distinct characters of `text`."""
        try:
            counts = np.bincount(np.frombuffer(text.encode("latin-1"), np.uint8), minlength=256)
            return cls(bytes(np.nonzero(counts)[0].astype(np.uint8)).decode("latin-1"))
        except UnicodeEncodeError:
            return cls("".join(sorted(set(text))))

    chars = property(lambda self: self._chars, doc="The characters, in id order.")
    size = property(lambda self: len(self._chars), doc="Number of characters.")

    def __len__(self) -> int:
        return len(self._chars)

    def __eq__(self, other) -> bool:
        return self._chars == other._chars if isinstance(other, Vocabulary) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._chars)

    def __repr__(self) -> str:
        return f"Vocabulary({self._chars!r})"

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Maps a string of N characters to int32 ids, shape (N,).

        Args:
            text: the string to encode.
            unknown: "error" raises DataError on characters outside the vocabulary (naming
                them, their counts and the first position); "space" maps them to the id
                of ' ' (DataError if the vocabulary has no space).
        """
        if unknown not in ("error", "space"):
            raise ValueError(f"Received an invalid value for argument `unknown`, expected "
                             f"'error' or 'space', got {unknown!r}.")
        if not isinstance(text, str):
            raise DataError(f"Received an invalid value for argument `text`, expected a str, "
                            f"got {type(text).__name__}.")
        try:  # the common case: one byte per character, a direct table lookup
            codes = np.frombuffer(text.encode("latin-1"), np.uint8)  # (N,)
            ids = self._table[codes]
        except UnicodeEncodeError:
            codes = _codepoints(text)  # (N,)
            ids = self._table[np.minimum(codes, len(self._table) - 1)]
        bad = ids < 0
        if not bad.any():
            return ids
        if unknown == "space" and " " in self._chars:
            ids[bad] = self._chars.index(" ")
            return ids
        where = np.nonzero(bad)[0]
        distinct = np.unique(codes[where])
        shown = ", ".join(repr(chr(c)) for c in distinct[:10])
        more = f" and {len(distinct) - 10} more" if len(distinct) > 10 else ""
        hint = ("Mapping them with unknown='space' needs ' ' in the vocabulary." if
                unknown == "space" else
                "Normalise the text, use a corpus vocabulary, or pass unknown='space'.")
        raise DataError(
            f"The text has {where.size} occurrence(s) of {len(distinct)} distinct character(s) "
            f"not in the vocabulary {self._chars!r}: {shown}{more} (first at position "
            f"{where[0]}). {hint}")

    def decode(self, ids) -> str:
        """Maps integer ids, shape (N,) (or a scalar), to a string of N characters.

        DataError on non-integer ids, more than one dimension or ids out of range.
        """
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"Received an invalid value for argument `ids`, expected integer "
                            f"ids, got dtype {arr.dtype}.")
        if arr.ndim > 1:
            raise DataError(f"Received an invalid value for argument `ids`, expected ids of "
                            f"shape (N,), got shape {arr.shape}.")
        arr = arr.reshape(-1)
        bad = (arr < 0) | (arr >= self.size)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"Received an invalid value for argument `ids`: id {arr[i]} at "
                            f"position {i} is out of range for a vocabulary of {self.size} "
                            f"characters (valid ids 0..{self.size - 1}).")
        return self._cps[arr].tobytes().decode("utf-32-le", "surrogatepass")

    def to_json(self) -> str:
        """JSON text {"chars": ...}."""
        return json.dumps({"chars": self._chars})

    @classmethod
    def from_json(cls, s: str) -> "Vocabulary":
        """Parses `to_json` output; DataError if it is not a valid vocabulary."""
        try:
            obj = json.loads(s)
        except ValueError as err:
            raise DataError(f"Not valid JSON ({err}).") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("chars"), str):
            raise DataError(f'Expected a JSON object {{"chars": "<characters>"}}, got '
                            f'{json.dumps(obj)[:80]}.')
        return cls(obj["chars"])

    def save(self, path) -> None:
        """Writes the JSON atomically, with the umask's mode (`tf_rnn.base.files`)."""
        files.atomic_write(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path) -> "Vocabulary":
        """Reads a file written by `save`; DataError if it is missing or corrupt."""
        path = pathlib.Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise DataError(f"Vocabulary file {str(path)!r} does not exist.") from None
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"Cannot read vocabulary file {str(path)!r}: {err}.") from None
        try:
            return cls.from_json(text)
        except DataError as err:  # its sentence goes on after the colon
            reason = str(err)
            raise DataError(f"Vocabulary file {str(path)!r} is corrupt: "
                            f"{reason[:1].lower()}{reason[1:]}") from None
