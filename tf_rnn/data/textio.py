"""Reading text files: UTF-8 text, gzip-compressed text or the single file of a zip
archive, and digests.

The lowest module of the data side after `vocab`: `tf_rnn.data.text8` reads its download with
it and `tf_rnn.data` reads every other corpus with it.
"""

import gzip
import hashlib
import pathlib
import zipfile
import zlib

from tf_rnn.base.errors import DataError

_CHUNK = 1 << 20  # hashing block, bytes


def file_sha256(path) -> str:
    """Hex SHA-256 digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode_utf8(payload: bytes, what: str) -> str:
    """Decodes UTF-8 (dropping a leading BOM); DataError naming `what` (capitalised: it
    starts the message) and the offset."""
    skip = 3 if payload.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = payload[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = err.start + skip
        raise DataError(f"{what} is not valid UTF-8: byte 0x{payload[at]:02x} at byte offset "
                        f"{at} ({err.reason}).") from None
    if not text:
        raise DataError(f"{what} is empty.")
    return text


def _read_zip_member(path: pathlib.Path) -> str:
    """The text of the single file inside the zip archive `path`."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [info for info in zf.infolist() if not info.is_dir()]
            if not members:
                raise DataError(f"Zip archive {str(path)!r} contains no file.")
            if len(members) > 1:
                names = ", ".join(repr(m.filename) for m in members[:10])
                more = " ..." if len(members) > 10 else ""
                raise DataError(f"Zip archive {str(path)!r} holds {len(members)} files, "
                                f"expected exactly one: {names}{more}.")
            payload = zf.read(members[0])
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise DataError(f"File {str(path)!r} is not a valid zip archive: {err}.") from None
    return _decode_utf8(payload, f"Member {members[0].filename!r} of {str(path)!r}")


def _read_gzip(path: pathlib.Path) -> str:
    """The text of the gzip-compressed file `path`."""
    try:
        with gzip.open(path, "rb") as f:
            payload = f.read()
    except (gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise DataError(f"File {str(path)!r} is not a valid gzip file: {err}.") from None
    return _decode_utf8(payload, f"Gzip file {str(path)!r}")


def load_text(path) -> str:
    """Reads a UTF-8 text file, the single file inside a zip archive (.zip or PK magic),
    or a gzip-compressed text (.gz or its magic).

    Returns the decoded, non-empty text. DataError on a missing path, a directory, an
    empty file or member, non-UTF-8 bytes (with the byte offset), a zip with no file or
    several (listed), or a corrupt zip or gzip file.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(f"Text file {str(path)!r} does not exist.")
    if path.is_dir():
        raise DataError(f"Path {str(path)!r} is a directory, expected a text file or a .zip "
                        f"archive.")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
        if path.suffix.lower() == ".zip" or magic == b"PK\x03\x04":
            return _read_zip_member(path)
        if path.suffix.lower() == ".gz" or magic[:2] == b"\x1f\x8b":
            return _read_gzip(path)
        return _decode_utf8(path.read_bytes(), f"Text file {str(path)!r}")
    except OSError as err:
        raise DataError(f"Cannot read {str(path)!r}: {err}.") from None
