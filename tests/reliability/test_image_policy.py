"""Untrusted image sources (issue 10, item 12): the ImagePolicy of the vision encoders.

Local paths must stay inside the allowed roots (``..`` and symlinks resolved), URLs are
refused unless the policy allows them (and then fetched within a byte and a time limit),
``file://`` URIs of other hosts and unknown schemes are refused, and big images are
decoded at a reduced scale or refused, never decoded in full past the cap. LangChain
documents and LlamaIndex nodes go through the same policy, and a refused source stops the
call before anything is encoded or written.

The HTTP tests serve from a ``http.server`` thread on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import http.client
import io
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document as LCDocument
from llama_index.core.schema import ImageNode, QueryBundle
from PIL import Image, ImageFile
from tiny_vision_models import build_clip, drawn_images

from smart_retrievers import SmartIndex
from smart_retrievers.encoders import (
    DEFAULT_MAX_DECODE_PIXELS,
    DEFAULT_MAX_PIXELS,
    ClipEncoder,
    ImageLoadError,
    ImagePolicy,
    load_image,
)
from smart_retrievers.encoders.images import location_field
from smart_retrievers.langchain import SmartReranker
from smart_retrievers.langchain import SmartRetriever as LCRetriever
from smart_retrievers.llama_index import SmartVectorIndex

# ---- fixtures ------------------------------------------------------------------


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return build_clip(tmp_path_factory.mktemp("tiny_vision") / "clip")


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return drawn_images(1)[0]


@pytest.fixture()
def tree(tmp_path, picture) -> dict[str, Path]:
    """``root/`` (the allowed root) holding ``in.png``; ``secret/secret.png`` outside it."""
    root, secret = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    secret.mkdir()
    picture.save(root / "in.png")
    picture.save(secret / "secret.png")
    return {"root": root, "inside": root / "in.png", "secret": secret / "secret.png", "secret_dir": secret}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch) -> None:
    """urllib honours proxy variables; the local test server must be reached directly."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


class _Server:
    """A local HTTP server: which paths were requested, and the base URL."""

    def __init__(self, png: bytes) -> None:
        self.png = png
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def _send(self, body: bytes, length: int | None = None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                try:
                    if self.path == "/img.png":
                        self._send(server.png, len(server.png))
                    elif self.path == "/declared-big":  # a Content-Length over the cap
                        self._send(server.png, 10 << 20)
                    elif self.path == "/stream":  # no Content-Length: 4 MiB, closed at the end
                        self.send_response(200)
                        self.end_headers()
                        for _ in range(64):
                            self.wfile.write(b"\0" * (64 << 10))
                    elif self.path == "/slow":  # a byte every 0.2 s
                        self.send_response(200)
                        self.send_header("Content-Length", "1000")
                        self.end_headers()
                        for _ in range(1000):
                            self.wfile.write(b"\0")
                            self.wfile.flush()
                            time.sleep(0.2)
                    elif self.path == "/slow-headers":  # the status line, then a header byte every 0.2 s
                        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                        for byte in b"X-Slow: " + b"a" * 200 + b"\r\n\r\n":
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.2)
                    elif self.path.startswith("/hop/"):  # a chain of slow redirects: 0.8 s per hop
                        left = int(self.path.rsplit("/", 1)[1])
                        time.sleep(0.8)
                        self.send_response(302)
                        self.send_header("Location", f"/hop/{left - 1}" if left > 1 else "/img.png")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif self.path == "/redirect":  # to another host name for the same server
                        self.send_response(302)
                        self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/img.png")
                        self.end_headers()
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the limits are for

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(picture) -> Iterator[_Server]:
    srv = _Server(_png(picture))
    yield srv
    srv.close()


def _refused(info: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(info.value)
    assert "refused by the image policy" in message, message
    for fragment in fragments:
        assert fragment in message, message


# ---- local paths -----------------------------------------------------------------


def test_default_policy_reads_any_local_path_and_no_url(tree, picture, server):
    out = load_image(str(tree["secret"]))  # the caller chose the path: no roots by default
    assert np.array_equal(np.asarray(out), np.asarray(picture))
    policy = ImagePolicy()
    assert policy.roots is None and policy.allow_urls is False
    assert policy.max_download_bytes == 32 << 20 and policy.fetch_timeout == 10.0
    assert policy.max_decode_pixels == DEFAULT_MAX_DECODE_PIXELS == 40_000_000
    with pytest.raises(ImageLoadError) as info:
        load_image(server.url + "/img.png", index=3, item_id="web")
    _refused(info, "image 3 (id 'web')", "allow_urls=True")
    assert server.requests == []  # nothing was fetched


def test_dotdot_cannot_escape_a_root(tree, picture, monkeypatch):
    policy = ImagePolicy(roots=[tree["root"]])
    assert policy.roots == (tree["root"].resolve(),)
    assert np.array_equal(np.asarray(load_image(str(tree["inside"]), policy=policy)), np.asarray(picture))
    escape = str(tree["root"] / ".." / "secret" / "secret.png")
    with pytest.raises(ImageLoadError) as info:
        load_image(escape, policy=policy, index=0, item_id="x")
    _refused(info, "outside the allowed roots", str(tree["secret"].resolve()))
    monkeypatch.chdir(tree["root"])  # a relative path resolves against the working directory
    assert load_image("in.png", policy=policy).size == picture.size
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        load_image("../secret/secret.png", policy=policy)
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        load_image(tree["secret"].as_uri(), policy=policy)  # a file:// URI is a path like any other
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        load_image(str(tree["inside"]), policy=ImagePolicy(roots=()))  # no local files at all
    # a sibling directory whose name starts like the root is not inside it
    sibling = tree["root"].parent / (tree["root"].name + "-evil")
    sibling.mkdir()
    picture.save(sibling / "x.png")
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        load_image(str(sibling / "x.png"), policy=policy)


def test_symlinks_cannot_escape_a_root(tree, picture):
    policy = ImagePolicy(roots=[tree["root"]])
    (tree["root"] / "link.png").symlink_to(tree["secret"])
    (tree["root"] / "linked_dir").symlink_to(tree["secret_dir"], target_is_directory=True)
    (tree["root"] / "inner_link.png").symlink_to(tree["inside"])
    for path in (tree["root"] / "link.png", tree["root"] / "linked_dir" / "secret.png"):
        assert load_image(str(path)).size == picture.size  # readable: the policy, not the file, refuses
        with pytest.raises(ImageLoadError) as info:
            load_image(str(path), policy=policy)
        _refused(info, "outside the allowed roots")
    assert load_image(str(tree["root"] / "inner_link.png"), policy=policy).size == picture.size
    # a root given through a symlink is resolved too
    alias = tree["root"].parent / "alias"
    alias.symlink_to(tree["root"], target_is_directory=True)
    assert load_image(str(tree["inside"]), policy=ImagePolicy(roots=[alias])).size == picture.size


def test_file_uris_of_other_hosts_are_refused(tree, picture):
    path = tree["inside"].resolve()
    assert load_image(path.as_uri()).size == picture.size  # file:///abs
    assert load_image("file://localhost" + path.as_posix()).size == picture.size
    for uri in ("file://otherhost" + path.as_posix(), "file://10.0.0.1/etc/hosts", "FILE://evil/x.png"):
        with pytest.raises(ImageLoadError) as info:
            load_image(uri, index=1)
        _refused(info, "names the host")
    with pytest.raises(ImageLoadError, match="absolute path"):
        load_image("file:relative.png")
    # a stored file:// location of another host is not turned into a local path
    assert location_field("file://otherhost/x/y.png") == ("image_url", "file://otherhost/x/y.png")
    assert location_field("file://localhost/x/y.png") == ("image_path", "/x/y.png")


def test_unknown_schemes_are_refused_not_read_as_relative_paths(tmp_path, picture, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the old loader read "ftp://host/x.png" as the relative path ftp:/host/x.png
    trap = tmp_path / "ftp:" / "host"
    trap.mkdir(parents=True)
    picture.save(trap / "x.png")
    for uri in ("ftp://host/x.png", "gopher://host/x.png", "s3://bucket/x.png", "HTTPX://h/x.png"):
        with pytest.raises(ImageLoadError) as info:
            load_image(uri, index=2, item_id="odd")
        _refused(info, "image 2 (id 'odd')", "unsupported URI scheme")
    with pytest.raises(ImageLoadError, match="allow_urls"):
        load_image("HTTP://127.0.0.1/x.png")  # schemes are case-insensitive: still a URL


# ---- URLs ------------------------------------------------------------------------


def test_urls_are_fetched_only_with_the_flag(server, picture):
    with pytest.raises(ImageLoadError, match="allow_urls"):
        load_image(server.url + "/img.png", policy=ImagePolicy(allow_urls=False))
    assert server.requests == []
    out = load_image(server.url + "/img.png", policy=ImagePolicy(allow_urls=True))
    assert np.array_equal(np.asarray(out), np.asarray(picture))
    assert server.requests == ["/img.png"]


def test_url_hosts_and_redirects(server, picture):
    only_ip = ImagePolicy(allow_urls=True, url_hosts=["127.0.0.1"])
    assert load_image(server.url + "/img.png", policy=only_ip).size == picture.size
    with pytest.raises(ImageLoadError) as info:
        load_image(server.url.replace("127.0.0.1", "localhost") + "/img.png", policy=only_ip)
    _refused(info, "not in url_hosts")
    server.requests.clear()
    with pytest.raises(ImageLoadError) as info:  # the redirect goes to "localhost": refused, not followed
        load_image(server.url + "/redirect", policy=only_ip)
    _refused(info, "'localhost' is not in url_hosts")
    assert server.requests == ["/redirect"]
    both = ImagePolicy(allow_urls=True, url_hosts=["127.0.0.1", "localhost"])
    assert load_image(server.url + "/redirect", policy=both).size == picture.size


def test_download_size_limit(server, monkeypatch):
    policy = ImagePolicy(allow_urls=True, max_download_bytes=100_000)
    with pytest.raises(ImageLoadError) as info:  # refused on its Content-Length, before reading
        load_image(server.url + "/declared-big", policy=policy)
    _refused(info, f"{10 << 20} bytes", "max_download_bytes=100000")
    reads: list[int] = []
    original = http.client.HTTPResponse.read1

    def counting_read1(self, n=-1):
        chunk = original(self, n)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr(http.client.HTTPResponse, "read1", counting_read1)
    with pytest.raises(ImageLoadError) as info:  # no Content-Length: streamed, stopped at the cap
        load_image(server.url + "/stream", policy=policy)
    _refused(info, "over max_download_bytes=100000")
    assert 100_000 < sum(reads) <= 100_000 + (64 << 10)  # 4 MiB were on offer


def test_download_time_limit(server):
    policy = ImagePolicy(allow_urls=True, fetch_timeout=1.0)
    start = time.monotonic()
    with pytest.raises(ImageLoadError) as info:
        load_image(server.url + "/slow", policy=policy)  # 1000 bytes at 5 bytes/s: 200 s
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, elapsed
    assert "fetch_timeout=1.0" in str(info.value) or "timed out" in str(info.value)


@pytest.mark.parametrize(
    "path",
    ["/slow-headers", "/hop/5"],  # 40 s of header bytes; five hops of 0.8 s (each under a per-read timeout)
)
def test_fetch_timeout_is_a_total_deadline_over_headers_and_redirects(server, picture, path):
    """Issue 25 (9): urllib's timeout bounds each read; fetch_timeout bounds the whole download."""
    assert load_image(server.url + "/hop/1", policy=ImagePolicy(allow_urls=True)).size == picture.size
    policy = ImagePolicy(allow_urls=True, fetch_timeout=1.5)
    start = time.monotonic()
    with pytest.raises(ImageLoadError) as info:
        load_image(server.url + path, policy=policy)
    elapsed = time.monotonic() - start
    _refused(info, "took longer than fetch_timeout=1.5 s")
    assert elapsed < 3.5, elapsed  # the server would take 4 s (hops) to 40 s (headers)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="os.mkfifo is POSIX-only")
def test_a_fifo_inside_the_roots_is_refused_not_read(tree, tmp_path):
    """Issue 25 (9): opening a FIFO for reading blocks until a writer comes; only regular files are opened."""
    fifo = tree["root"] / "pipe.png"
    os.mkfifo(fifo)
    policy = ImagePolicy(roots=[tree["root"]])
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_image(fifo, policy=policy)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # unblock the reader so the test run can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("loading a FIFO blocked")
    assert isinstance(outcome[0], ImageLoadError), outcome
    assert "is a FIFO; only regular files are read" in str(outcome[0])
    with pytest.raises(ImageLoadError, match="is a directory; only regular files are read"):
        load_image(tree["root"], policy=policy)


def test_policy_arguments_are_checked():
    with pytest.raises(TypeError, match="roots"):
        ImagePolicy(roots=[3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="allow_urls"):
        ImagePolicy(allow_urls="yes")  # type: ignore[arg-type]
    for bad in ({"max_download_bytes": 0}, {"max_decode_pixels": -1}, {"fetch_timeout": float("nan")}):
        with pytest.raises(ValueError):
            ImagePolicy(**bad)
    assert ImagePolicy(roots="/tmp").roots == (Path("/tmp").resolve(),)
    assert ImagePolicy(url_hosts="Example.COM").url_hosts == ("example.com",)


# ---- decoding big images -------------------------------------------------------


@pytest.fixture()
def decoded_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The size of every image PIL decodes (``ImageFile.load``), in order."""
    sizes: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def spy(self):
        if self.tile:  # not yet decoded: this call decodes at self.size
            sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return sizes


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """A 8000x6000 (48 MP) JPEG: over the 40 MP decode cap, under PIL's 89 MP guard."""
    img = Image.new("L", (8000, 6000), 90)
    img.paste(200, (1000, 1000, 3000, 2500))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=50)
    return buf.getvalue()


def test_big_jpeg_is_decoded_at_a_reduced_scale(big_jpeg, decoded_sizes, tmp_path):
    out = load_image(big_jpeg)  # default max_pixels (about 1 MP): 1/4 scale, the smallest still >= 1 MP
    assert decoded_sizes == [(2000, 1500)]
    assert out.width * out.height <= DEFAULT_MAX_PIXELS and out.mode == "RGB"
    decoded_sizes.clear()
    path = tmp_path / "big.jpg"
    path.write_bytes(big_jpeg)
    out = load_image(str(path), max_pixels=None)  # no resize asked: still never decoded past the cap
    assert decoded_sizes == [(4000, 3000)] and out.size == (4000, 3000)
    decoded_sizes.clear()
    out = load_image(big_jpeg, max_pixels=None, policy=ImagePolicy(max_decode_pixels=1_000_000))
    assert decoded_sizes == [(1000, 750)] and out.size == (1000, 750)
    decoded_sizes.clear()
    with pytest.raises(ImageLoadError) as info:  # even 1/8 scale is over this cap: refused undecoded
        load_image(big_jpeg, policy=ImagePolicy(max_decode_pixels=500_000), index=4)
    _refused(info, "image 4", "max_decode_pixels=500000")
    assert decoded_sizes == []


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_big_png_over_the_cap_is_refused_before_decoding(decoded_sizes):
    bomb = _png_header_only(9000, 9000)  # 81 MP: under PIL's guard, over the default cap
    with pytest.raises(ImageLoadError) as info:
        load_image(bomb, index=0, item_id="bomb")
    _refused(info, "image 0 (id 'bomb')", "9000x9000", "max_decode_pixels=40000000")
    assert decoded_sizes == []  # refused from the header alone
    small = Image.new("RGB", (300, 200), (1, 2, 3))
    with pytest.raises(ImageLoadError, match="max_decode_pixels=50000"):
        load_image(_png(small), policy=ImagePolicy(max_decode_pixels=50_000))
    assert load_image(small, policy=ImagePolicy(max_decode_pixels=50_000)).size == small.size  # already decoded


# ---- the index and the frameworks ----------------------------------------------


def _clip(clip_dir: Path, policy: ImagePolicy | None = None) -> ClipEncoder:
    return ClipEncoder(clip_dir, device="cpu", image_policy=policy)


def _count_batches(monkeypatch, encoder: ClipEncoder) -> list[int]:
    calls: list[int] = []
    original = encoder._encode_batch

    def counted(indices, texts, images, query):
        calls.append(len(indices))
        return original(indices, texts, images, query)

    monkeypatch.setattr(encoder, "_encode_batch", counted)
    return calls


def test_encoder_policy_and_add_images(tmp_path, clip_dir, tree, monkeypatch):
    encoder = _clip(clip_dir, ImagePolicy(roots=[tree["root"]]))
    assert _clip(clip_dir).image_policy == ImagePolicy()
    with pytest.raises(TypeError, match="image_policy"):
        ClipEncoder(clip_dir, device="cpu", image_policy={"roots": []})  # type: ignore[arg-type]
    calls = _count_batches(monkeypatch, encoder)
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none", write_batch_size=1)
    sources = [str(tree["inside"])] * 3 + [str(tree["root"] / ".." / "secret" / "secret.png")]
    with pytest.raises(ImageLoadError) as info:
        index.add_images(sources, ids=["a", "b", "c", "d"])
    _refused(info, "image 3 (id 'd')", "outside the allowed roots")
    assert info.value.index == 3 and info.value.item_id == "d"
    assert calls == [] and index.count() == 0  # refused before anything was encoded or written
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        encoder.encode_images([str(tree["inside"]), str(tree["secret"])])
    assert calls == []
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        index.search_image(str(tree["secret"]), k=1)  # query images too
    assert index.add_images([str(tree["inside"])], ids=["ok"]) == ["ok"] and index.count() == 1


def test_langchain_documents_go_through_the_policy(tmp_path, clip_dir, tree, server, monkeypatch):
    encoder = _clip(clip_dir, ImagePolicy(roots=[tree["root"]]))
    calls = _count_batches(monkeypatch, encoder)
    retriever = LCRetriever(index=SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none"), k=2)
    ok = LCDocument(id="ok", page_content="", metadata={"image_path": str(tree["inside"])})
    monkeypatch.chdir(tree["root"])
    for bad in (
        LCDocument(id="dots", page_content="", metadata={"image_path": "../secret/secret.png"}),
        LCDocument(id="url", page_content="", metadata={"image_url": server.url + "/img.png"}),
        LCDocument(id="host", page_content="", metadata={"image_url": "file://otherhost/etc/x.png"}),
        LCDocument(id="ftp", page_content="", metadata={"image_path": "ftp://host/x.png"}),
    ):
        with pytest.raises(ImageLoadError) as info:
            retriever.add_documents([ok, bad])
        _refused(info, f"image 1 (id {bad.id!r})")
    assert server.requests == [] and calls == [] and retriever.index.count() == 0
    with pytest.raises(ImageLoadError, match="allow_urls"):
        retriever.invoke("", image=server.url + "/img.png")  # an image query
    reranker = SmartReranker(encoder=encoder, top_n=1)
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        reranker.compress_documents(
            [LCDocument(page_content="", metadata={"image_path": str(tree["secret"])})], "a query"
        )
    assert server.requests == []
    # with URLs allowed (and the host listed), the same document is fetched and indexed
    encoder.image_policy = ImagePolicy(roots=[tree["root"]], allow_urls=True, url_hosts=["127.0.0.1"])
    url_doc = LCDocument(id="url", page_content="", metadata={"image_url": server.url + "/img.png"})
    assert retriever.add_documents([ok, url_doc]) == ["ok", "url"]
    assert server.requests == ["/img.png"] and retriever.index.count() == 2


def test_llama_index_nodes_go_through_the_policy(tmp_path, clip_dir, tree, server, monkeypatch):
    encoder = _clip(clip_dir, ImagePolicy(roots=[tree["root"]]))
    calls = _count_batches(monkeypatch, encoder)
    index = SmartVectorIndex(uri=str(tmp_path / "db"), encoder=encoder)
    (tree["root"] / "escape.png").symlink_to(tree["secret"])
    ok = ImageNode(id_="ok", image_path=str(tree["inside"]))
    for bad in (
        ImageNode(id_="link", image_path=str(tree["root"] / "escape.png")),
        ImageNode(id_="dots", image_path=str(tree["root"] / ".." / "secret" / "secret.png")),
        ImageNode(id_="url", image_url=server.url + "/img.png"),
        ImageNode(id_="host", image_url="file://otherhost/etc/x.png"),
        ImageNode(id_="ftp", image_url="ftp://host/x.png"),
    ):
        with pytest.raises(ImageLoadError) as info:
            index.insert_nodes([ok, bad])
        _refused(info, f"image 1 (id {bad.node_id!r})")
    assert server.requests == [] and calls == [] and index.smart_index.count() == 0
    retriever = index.as_retriever(similarity_top_k=1)
    with pytest.raises(ImageLoadError, match="outside the allowed roots"):
        retriever.retrieve(QueryBundle(query_str="", image_path=str(tree["secret"])))
    index.insert_nodes([ok])
    assert index.smart_index.count() == 1
