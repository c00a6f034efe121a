"""A bound on the request head (request line + headers) under uvicorn's httptools parser.

uvicorn's h11 parser refuses a head over 16 KiB by itself; its httptools parser buffers a head of
any size (a 64 MB header was answered 200 and grew the process by 64 MB: a few such clients are
an out-of-memory attack). ``BoundedHttpToolsProtocol`` counts the bytes that arrive while a head is
incomplete and, past ``MAX_HEAD_BYTES``, answers 431 and closes the connection.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 1 << 20  # well above any real head; bytes of a read that completes a head are not counted
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 30\r\nconnection: close\r\n\r\nrequest head above 1048576 B\r\n"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on the bytes of an incomplete request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between the end of one message and the end of the next head
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():  # all of ``data`` went into a head still open
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.logger.warning("request head above %d bytes: 431", MAX_HEAD_BYTES)
                self.transport.write(_431)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # a pipelined or keep-alive request starts its head
