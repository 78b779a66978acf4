"""text8: download, verify (size and SHA-256) and cache `text8.zip`.

    tf_rnn.data.text8.download_text8(cache_dir)  -> cache_dir/text8.zip, fetched only if absent

The cache is `$TF_RNN_CACHE`, else `~/.cache/tf_rnn` (`--cache-dir` on the commands).
Offline, put a copy of text8.zip there by hand (the error message says where), or train
on the corpus shipped with the package (`--data shakespeare`) or any other (`--data FILE`).
"""

import hashlib
import http.client
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.request

from tqdm import tqdm

from tf_rnn.base import files, logs
from tf_rnn.base.errors import DataError
from tf_rnn.data import corpora
from tf_rnn.data.textio import file_sha256, load_text

TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
TEXT8_SIZE = 31_344_016  # bytes of text8.zip
# Digest of text8.zip as pinned, with the size above, by TensorFlow's own word2vec tutorial
# (tensorflow/tensorflow: tensorflow/examples/tutorials/word2vec/word2vec_basic.py).
TEXT8_SHA256 = "a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232"
CACHE_ENV = "TF_RNN_CACHE"
_CHUNK = 1 << 20  # download / hashing block, bytes
_TIMEOUT_S = 60.0  # socket timeout of the download


def default_cache_dir() -> pathlib.Path:
    """The download cache: $TF_RNN_CACHE if set, else ~/.cache/tf_rnn."""
    return pathlib.Path(os.environ.get(CACHE_ENV) or "~/.cache/tf_rnn").expanduser()


def _verify(path: pathlib.Path, expected_size, sha256) -> str | None:
    """None if `path` has the expected size and digest, else what is wrong."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"size {size} bytes, expected {expected_size}"
    if sha256 is not None:
        digest = file_sha256(path)
        if digest != sha256.lower():
            return f"SHA-256 {digest}, expected {sha256.lower()}"
    return None


def _fetch(url, tmp: pathlib.Path, expected_size, sha256, progress, desc) -> None:
    """Downloads `url` into `tmp`, hashing on the fly; DataError on failure or mismatch."""
    digest, got = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp, tmp.open("wb") as out:
            total = resp.headers.get("Content-Length", "")
            with tqdm(total=int(total) if total.isdigit() else None, unit="B", unit_scale=True,
                      unit_divisor=1024, desc=desc, file=sys.stderr, disable=not progress) as bar:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    got += len(block)
                    bar.update(len(block))
                    if expected_size is not None and got > expected_size:
                        break  # already too big: no point fetching the rest
            out.flush()
            os.fsync(out.fileno())
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        plain = isinstance(err, urllib.error.HTTPError) or not hasattr(err, "reason")
        reason = err if plain else err.reason  # "HTTP Error 404: ..." / "[Errno 111] ..."
        reason = str(reason).rstrip(".")
        raise DataError(f"Downloading {url} failed: {reason}.") from None
    if expected_size is not None and got != expected_size:
        got_text = f"more than {expected_size}" if got > expected_size else str(got)
        raise DataError(f"The download from {url} has the wrong size: expected "
                        f"{expected_size} bytes, got {got_text}.")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise DataError(f"The download from {url} has the wrong SHA-256: expected "
                        f"{sha256.lower()}, got {digest.hexdigest()}.")


def download_text8(cache_dir, url=TEXT8_URL, expected_size=TEXT8_SIZE, sha256=TEXT8_SHA256,
                   progress=True, filename="text8.zip") -> pathlib.Path:
    """Returns cache_dir/filename, a verified copy of `url`, downloading only when needed.

    A cached file that fails verification is deleted (with a message on stderr) and
    fetched again. Downloads go to a temp file in `cache_dir`, renamed into place only
    once verified: no partial or wrong file is ever left under the final name.

    Args:
        cache_dir: the cache directory (created if missing).
        url: where to download from.
        expected_size: size in bytes, or None to skip the size check.
        sha256: hex SHA-256 digest, or None to skip the digest check.
        progress: show a tqdm progress bar on stderr.
        filename: name of the file in `cache_dir`.

    Raises:
        DataError: network failure, or a download of the wrong size or digest; the
          message ends with what to do instead (--data, or the file by hand).
    """
    cache_dir = pathlib.Path(cache_dir).expanduser()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"Cannot create the cache directory {str(cache_dir)!r}: {err}. "
                        f"Set {CACHE_ENV} or pass --cache-dir to use another one.") from None
    final = cache_dir / filename
    if final.is_file():
        problem = _verify(final, expected_size, sha256)
        if problem is None:
            return final
        logs.note(f"tf_rnn: cached {final} failed verification ({problem}); deleting it "
                  f"and downloading {url} again")
        final.unlink()
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{filename}.", suffix=".part")
    os.fchmod(fd, files.umask_mode())  # a shared cache: readable like any other file
    os.close(fd)
    tmp = pathlib.Path(tmp)
    try:
        _fetch(url, tmp, expected_size, sha256, progress, desc=filename)
        os.replace(tmp, final)
    except DataError as err:
        raise DataError(f"{err} {_by_hand(final, url)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final


def read_text8(path) -> str:
    """The text of text8.zip (its single member)."""
    return load_text(path)


def _by_hand(final, url):
    """The next step when text8 cannot be downloaded: another corpus, or a copy by hand."""
    shipped = ", ".join(corpora.SHIPPED)
    return (f"To go on without it, train on the corpus shipped with the package (--data "
            f"{shipped}) or another one (--data FILE: a UTF-8 text, or a .gz or .zip holding "
            f"one), or put a copy of {final.name} from {url} at {final} "
            f"by hand (the cache directory: set {CACHE_ENV} or pass --cache-dir to use "
            f"another one).")
