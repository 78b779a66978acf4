"""Tests of tf_rnn.data: vocabularies, normalisation, files, download, corpus, cursors."""

import hashlib
import http.server
import io
import re
import threading
import zipfile

import numpy as np
import pytest

from tf_rnn import data
from tf_rnn.data import BatchCursors, DataError, text8
from tf_rnn.data import textio, vocab as vocab_lib, Vocabulary

# --- Vocabulary ------------------------------------------------------------------------


def test_text8_vocabulary_ids():
    vocab = Vocabulary.text8()
    assert vocab.size == len(vocab) == 27
    assert vocab.chars == vocab_lib.TEXT8_ALPHABET
    np.testing.assert_array_equal(vocab.encode(" az"), [0, 1, 26])
    assert vocab.encode("hello").dtype == np.int32


def test_from_text_sorted_distinct():
    assert Vocabulary.from_text("hello world").chars == " dehlorw"
    assert Vocabulary.from_text("éaλa").chars == "aéλ"  # the non-latin-1 path sorts too


@pytest.mark.parametrize("text", ["the quick brown fox", "", "zzz  a"])
def test_encode_decode_round_trip(text):
    vocab = Vocabulary.text8()
    ids = vocab.encode(text)
    assert ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text


def test_encode_decode_non_latin1_vocabulary():
    vocab = Vocabulary("aλ€ b")
    ids = vocab.encode("€λ b a")
    np.testing.assert_array_equal(ids, [2, 1, 3, 4, 3, 0])
    assert vocab.decode(ids) == "€λ b a"


def test_encode_matches_per_character_lookup_on_long_text():
    rng = np.random.default_rng(0)
    vocab = Vocabulary.text8()
    text = "".join(rng.choice(list(vocab_lib.TEXT8_ALPHABET), size=50_000))
    expected = [vocab_lib.TEXT8_ALPHABET.index(c) for c in text]
    np.testing.assert_array_equal(vocab.encode(text), expected)


def test_unknown_characters_error_names_them_and_first_position():
    vocab = Vocabulary.text8()
    with pytest.raises(DataError) as info:
        vocab.encode("abc!D\n!xyz")
    message = str(info.value)
    for shown in ("'!'", "'D'", "'\\n'"):
        assert shown in message
    assert "3 distinct" in message
    assert "4 occurrence" in message
    assert "position 3" in message


def test_unknown_characters_error_caps_the_list():
    vocab = Vocabulary("a")
    with pytest.raises(DataError, match="and 5 more"):
        vocab.encode("a" + "bcdefghijklmnop")


def test_unknown_space_maps_to_space_id():
    vocab = Vocabulary.text8()
    np.testing.assert_array_equal(vocab.encode("a,b€", unknown="space"), [1, 0, 2, 0])
    with pytest.raises(DataError, match="needs ' '"):
        Vocabulary("ab").encode("a?", unknown="space")
    with pytest.raises(ValueError, match="unknown"):
        vocab.encode("a", unknown="drop")


@pytest.mark.parametrize("chars, match", [("", "at least one"), ("abca", "repeat"), (None, "str")])
def test_bad_vocabulary_chars(chars, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(chars)


def test_decode_rejects_bad_ids():
    vocab = Vocabulary.text8()
    with pytest.raises(DataError, match="id 27 at position 1"):
        vocab.decode([0, 27])
    with pytest.raises(DataError, match="id -1"):
        vocab.decode(np.array([-1]))
    with pytest.raises(DataError, match="integer"):
        vocab.decode([0.5])
    with pytest.raises(DataError, match="shape"):
        vocab.decode(np.zeros((2, 2), np.int32))


def test_vocabulary_equality_and_repr():
    assert Vocabulary("ab") == Vocabulary("ab")
    assert Vocabulary("ab") != Vocabulary("ba")
    assert {Vocabulary("ab"): 1}[Vocabulary("ab")] == 1
    assert repr(Vocabulary("ab")) == "Vocabulary('ab')"


def test_vocabulary_save_load_round_trip(tmp_path):
    vocab = Vocabulary(' abc"\\\nλ')
    path = tmp_path / "work" / "vocab.json"
    vocab.save(path)
    assert Vocabulary.load(path) == vocab
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temp file left


@pytest.mark.parametrize("content, match", [
    (b"{not json", "not valid JSON"),
    (b'{"letters": "ab"}', "chars"),
    (b'{"chars": "aa"}', "repeat"),
    (b"\xff\xfe", "Cannot read"),
])
def test_vocabulary_load_corrupt_file(tmp_path, content, match):
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_vocabulary_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Vocabulary.load(tmp_path / "nope.json")


# --- normalize_text8 ---------------------------------------------------------------------


def test_normalize_spells_digits():
    assert data.normalize_text8("In 1984.") == "in one nine eight four"
    assert data.normalize_text8("a0b") == "a zero b"


def test_normalize_punctuation_newlines_and_case():
    text = "  Hello,\n\tWORLD!!  (Café) — x-ray\r\n"
    assert data.normalize_text8(text) == "hello world caf x ray"
    assert data.normalize_text8("...") == ""


# --- load_text ---------------------------------------------------------------------------


def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():  # a fixed time: the same bytes every run
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), payload,
                        compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def test_load_plain_text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("\ufeffhéllo\nworld".encode("utf-8"))  # the BOM is dropped
    assert textio.load_text(path) == "héllo\nworld"


def test_load_zip_with_one_member(tmp_path):
    path = tmp_path / "corpus.zip"
    path.write_bytes(_zip_bytes({"dir/": b"", "dir/corpus": "abc λ".encode()}))
    assert textio.load_text(str(path)) == "abc λ"


@pytest.mark.parametrize("name, content, match", [
    ("empty.txt", b"", "empty"),
    ("bom_only.txt", b"\xef\xbb\xbf", "empty"),
    ("latin1.txt", b"abc\xe9def", "byte 0xe9 at byte offset 3"),
    ("none.zip", _zip_bytes({}), "contains no file"),
    ("two.zip", _zip_bytes({"a.txt": b"x", "b.txt": b"y"}), "2 files.*'a.txt', 'b.txt'"),
    ("empty_member.zip", _zip_bytes({"a.txt": b""}), "Member 'a.txt' .* is empty."),
    ("bad_member.zip", _zip_bytes({"a.txt": b"ok\xff"}), "Member 'a.txt' .*offset 2"),
    ("corrupt.zip", b"PK\x03\x04 this is not really a zip", "not a valid zip"),
])
def test_load_text_bad_files(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        textio.load_text(path)
    assert name in str(info.value)


def test_load_text_truncated_zip(tmp_path):
    path = tmp_path / "cut.zip"
    path.write_bytes(_zip_bytes({"a.txt": b"hello world" * 100})[:60])
    with pytest.raises(DataError, match="cut.zip"):
        textio.load_text(path)


def test_load_text_missing_path_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        textio.load_text(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="is a directory"):
        textio.load_text(tmp_path)


# --- download_text8 against a local HTTP server ------------------------------------------

FAKE_TEXT8 = ("anarchism originated as a term of abuse " * 60).strip()
FAKE_ZIP = _zip_bytes({"text8": FAKE_TEXT8.encode()})
FAKE_SHA = hashlib.sha256(FAKE_ZIP).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        if self.path != "/text8.zip":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(FAKE_ZIP)))
        self.end_headers()
        self.wfile.write(FAKE_ZIP)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/text8.zip"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _download(server, cache, **kwargs):
    args = dict(url=server.url, expected_size=len(FAKE_ZIP), sha256=FAKE_SHA, progress=False)
    args.update(kwargs)
    return text8.download_text8(cache, **args)


def test_download_verifies_and_caches(server, tmp_path):
    cache = tmp_path / "cache"
    path = _download(server, cache)
    assert path == cache / "text8.zip"
    assert path.read_bytes() == FAKE_ZIP
    assert len(server.requests) == 1
    assert _download(server, cache) == path
    assert len(server.requests) == 1  # served from the cache
    assert [p.name for p in cache.iterdir()] == ["text8.zip"]
    assert text8.read_text8(path) == FAKE_TEXT8


def test_download_wrong_size_leaves_nothing(server, tmp_path):
    with pytest.raises(DataError) as info:
        _download(server, tmp_path, expected_size=len(FAKE_ZIP) + 1)
    message = str(info.value)
    assert f"expected {len(FAKE_ZIP) + 1} bytes, got {len(FAKE_ZIP)}" in message
    assert server.url in message
    assert list(tmp_path.iterdir()) == []


def test_download_too_large(server, tmp_path):
    with pytest.raises(DataError, match=f"got more than {len(FAKE_ZIP) - 10}"):
        _download(server, tmp_path, expected_size=len(FAKE_ZIP) - 10)
    assert list(tmp_path.iterdir()) == []


def test_download_wrong_digest_leaves_nothing(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        _download(server, tmp_path, sha256=wrong)
    message = str(info.value)
    assert f"expected {wrong}" in message and f"got {FAKE_SHA}" in message
    assert server.url in message
    assert list(tmp_path.iterdir()) == []


def test_download_replaces_corrupt_cached_file(server, tmp_path, capsys):
    cached = tmp_path / "text8.zip"
    cached.write_bytes(b"x" * len(FAKE_ZIP))  # right size, wrong digest
    path = _download(server, tmp_path)
    assert path.read_bytes() == FAKE_ZIP
    assert len(server.requests) == 1
    assert "failed verification" in capsys.readouterr().err


def test_download_network_errors(server, tmp_path):
    missing = server.url.replace("text8.zip", "missing.zip")
    with pytest.raises(DataError, match="missing.zip.*404"):
        _download(server, tmp_path, url=missing)
    with pytest.raises(DataError, match="127.0.0.1:9"):
        _download(server, tmp_path, url="http://127.0.0.1:9/text8.zip")  # nothing listens
    assert list(tmp_path.iterdir()) == []


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_RNN_CACHE", str(tmp_path))
    assert text8.default_cache_dir() == tmp_path
    monkeypatch.delenv("TF_RNN_CACHE")
    assert text8.default_cache_dir().parts[-2:] == (".cache", "tf_rnn")


def test_text8_constants():
    assert text8.TEXT8_SIZE == 31_344_016
    assert sum(data.TEXT8_SPLIT) == 100_000_000
    assert re.fullmatch("[0-9a-fA-F]{64}", text8.TEXT8_SHA256)  # a SHA-256 in hex


# --- split_text and load_corpus ----------------------------------------------------------


def test_split_text_proportions():
    train, valid, test = data.split_text("abcdefghijklmnopqrst")
    assert (train, valid, test) == ("abcdefghijklmnopqr", "s", "t")
    sizes = [len(p) for p in data.split_text(range(100_000_000))]
    assert tuple(sizes) == data.TEXT8_SPLIT


def test_split_text_errors():
    with pytest.raises(DataError, match="10 characters"):
        data.split_text("a" * 10)
    with pytest.raises(ValueError, match="fractions"):
        data.split_text("a" * 100, (0.5, 0.5))
    with pytest.raises(ValueError, match="fractions"):
        data.split_text("a" * 100, (0.9, 0.2, -0.1))


def test_load_corpus_text8_via_local_server(server, tmp_path):
    kwargs = dict(url=server.url, expected_size=len(FAKE_ZIP), sha256=FAKE_SHA)
    corpus = data.load_corpus(cache_dir=tmp_path, download_kwargs=kwargs, progress=False)
    assert corpus.source == "text8"
    assert corpus.vocab == Vocabulary.text8()
    for part in (corpus.train, corpus.valid, corpus.test):
        assert part.dtype == np.int32 and part.size > 0
    joined = np.concatenate([corpus.train, corpus.valid, corpus.test])
    assert corpus.vocab.decode(joined) == FAKE_TEXT8
    assert len(corpus.train) == round(0.9 * len(FAKE_TEXT8))
    data.load_corpus(cache_dir=tmp_path, download_kwargs=kwargs, progress=False)
    assert len(server.requests) == 1


def test_load_corpus_local_path_and_vocab_modes(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("Hello, World 42!\n" * 20)
    with pytest.raises(DataError, match="'H'"):
        data.load_corpus(path)
    corpus = data.load_corpus(path, normalize=True)
    assert corpus.source == str(path)
    assert corpus.vocab.decode(corpus.train).startswith("hello world four two hello")
    by_corpus = data.load_corpus(path, vocab="corpus")
    assert by_corpus.vocab.chars == "\n !,24HWdelor"
    mine = Vocabulary(" !,24HWdelor\n")
    assert data.load_corpus(path, vocab=mine).vocab is mine
    spaced = data.load_corpus(path, unknown="space")
    assert spaced.vocab.decode(spaced.train[:16]) == " ello   orld    "
    with pytest.raises(ValueError, match="vocab"):
        data.load_corpus(path, vocab="words")


# --- BatchCursors ------------------------------------------------------------------------


def _ids(n):
    return np.arange(n, dtype=np.int32)


def test_window_shape_dtype_and_starts():
    cursors = BatchCursors(_ids(100), batch_size=4, num_unrollings=5)
    window = cursors.next()
    assert window.shape == (4, 6) and window.dtype == np.int32
    np.testing.assert_array_equal(window[:, 0], [0, 25, 50, 75])
    np.testing.assert_array_equal(window[1], np.arange(25, 31))
    np.testing.assert_array_equal(cursors.positions, [5, 30, 55, 80])
    assert cursors.steps_per_epoch == 5


def test_consecutive_windows_continue_the_text():
    text = np.random.default_rng(1).integers(0, 27, size=1000).astype(np.int32)
    cursors = BatchCursors(text, batch_size=8, num_unrollings=7)
    windows = [cursors.next() for _ in range(10)]
    for first, second in zip(windows, windows[1:]):
        np.testing.assert_array_equal(second[:, 0], first[:, -1])
    stream = np.concatenate([windows[0][:, :1]] + [w[:, 1:] for w in windows], axis=1)
    for b in range(8):
        start = b * (1000 // 8)
        np.testing.assert_array_equal(stream[b], text[start:start + 71])


def test_wrap_around_the_end():
    cursors = BatchCursors(_ids(10), batch_size=2, num_unrollings=4)
    cursors.next()
    second = cursors.next()
    np.testing.assert_array_equal(second, [[4, 5, 6, 7, 8], [9, 0, 1, 2, 3]])
    np.testing.assert_array_equal(cursors.next(), [[8, 9, 0, 1, 2], [3, 4, 5, 6, 7]])


def test_state_round_trip_continues_identically():
    ids = np.random.default_rng(2).integers(0, 27, size=333)
    original = BatchCursors(ids, batch_size=3, num_unrollings=11)
    for _ in range(4):
        original.next()
    state = original.get_state()
    assert state.dtype == np.int64 and state.shape == (3,)
    restored = BatchCursors(ids, batch_size=3, num_unrollings=11)
    restored.set_state(state)
    for _ in range(20):
        np.testing.assert_array_equal(restored.next(), original.next())


def test_set_state_validates():
    cursors = BatchCursors(_ids(50), batch_size=2, num_unrollings=3)
    with pytest.raises(DataError, match="shape"):
        cursors.set_state([0, 1, 2])
    with pytest.raises(DataError, match=r"\[0, 50\)"):
        cursors.set_state([0, 50])
    with pytest.raises(DataError, match="integers"):
        cursors.set_state([0.0, 1.0])


def test_too_short_corpus_and_bad_sizes():
    with pytest.raises(DataError, match="corpus of 11 characters is shorter than one batch "
                                        r"window of batch_size x \(num_unrollings\+1\).* = 12"):
        BatchCursors(_ids(11), batch_size=3, num_unrollings=3)
    BatchCursors(_ids(12), batch_size=3, num_unrollings=3)  # exactly one window is enough
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            BatchCursors(_ids(100), batch_size=bad, num_unrollings=3)
    with pytest.raises(ValueError, match="num_unrollings"):
        BatchCursors(_ids(100), batch_size=2, num_unrollings=0)
