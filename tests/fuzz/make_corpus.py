#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/: small, named inputs covering the
happy paths and each rejection, so that fuzzing starts from every branch worth mutating. The
files are committed; rerun this after changing it (it rewrites the three directories).

    python3 tests/fuzz/make_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def http_seeds():
    ok = b"GET / HTTP/1.1\r\nHost: a\r\n"
    te = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    return {
        "get": b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
        "get_http10": b"GET / HTTP/1.0\r\n\r\n",
        "get_http10_keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "connection_close": ok + b"Connection: close\r\n\r\n",
        "post_content_length": b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": te + b"5;ext=1\r\nhello\r\n1 ; a=\"b\"\r\n!\r\n0\r\n\r\n",
        "chunked_trailers": te + b"3\r\nabc\r\n0;last\r\nChecksum: x\r\nT2: y\r\n\r\n",
        "pipelined": b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
        b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n",
        "pipelined_chunked": te + b"2\r\nhi\r\n0\r\n\r\n" + ok + b"\r\n",
        "expect_continue": b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
        b"Content-Length: 2\r\n\r\nok",
        "options_asterisk": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "absolute_form": b"GET http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "leading_crlf": b"\r\n" + ok + b"\r\n",
        "obs_text_value": ok + b"X: caf\xc3\xa9\r\n\r\n",
        "obs_fold": ok + b"X: a\r\n  b\r\n\r\n",
        "bare_cr": ok + b"X: a\rb\r\n\r\n",
        "bare_lf": b"GET / HTTP/1.1\nHost: a\n\n",
        "nul_in_header": ok + b"X: a\x00b\r\n\r\n",
        "duplicate_content_length": ok + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\na",
        "invalid_content_length": ok + b"Content-Length: 1,1\r\n\r\na",
        "content_length_and_te": ok + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        "te_gzip_chunked": ok + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "te_chunked_gzip": ok + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        "te_http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "missing_host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        "duplicate_host": ok + b"Host: b\r\n\r\n",
        "ws_before_colon": ok + b"X : a\r\n\r\n",
        "bad_method": b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "http2": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "http09": b"GET /\r\n\r\n",
        "long_uri": b"GET /" + b"a" * 40 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        "many_headers": ok + b"".join(b"X-%d: v\r\n" % i for i in range(8)) + b"\r\n",
        "big_body": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n" + b"b" * 40,
        "chunk_bad_crlf": te + b"5\r\nhello!\r\n",
        "chunk_size_overflow": te + b"ffffffffffffffffffff\r\n",
    }


def resp_seeds():
    def cmd(*args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    return {
        "set": cmd(b"SET", b"key", b"value"),
        "get": cmd(b"GET", b"key"),
        "ping": cmd(b"PING"),
        "binary": cmd(b"SET", b"k", b"a\r\nb\x00c"),
        "empty_bulk": cmd(b"SET", b"k", b""),
        "empty_multibulk": b"*0\r\n*-1\r\n",
        "pipelined": cmd(b"INCR", b"n") * 3 + cmd(b"GET", b"n"),
        "inline": b"PING\r\n",
        "inline_lf": b"SET a b\n",
        "inline_quotes": b"SET \"a b\" 'c d' \"\\x41\\n\"\r\n",
        "inline_blank": b"\r\n  \r\nPING\r\n",
        "mixed": cmd(b"PING") + b"ECHO hi\r\n" + cmd(b"GET", b"k"),
        "partial": cmd(b"SET", b"key", b"value")[:-5],
        "invalid_multibulk_length": b"*abc\r\n",
        "multibulk_leading_zero": b"*01\r\n",
        "multibulk_too_many": b"*1048577\r\n",
        "invalid_bulk_length": b"*1\r\n$-1\r\n",
        "bulk_too_long": b"*1\r\n$536870913\r\n",
        "expected_dollar": b"*1\r\n:1\r\n",
        "bulk_missing_crlf": b"*1\r\n$3\r\nabcd\r\n",
        "unbalanced_quotes": b"SET \"abc\r\n",
        "quote_then_text": b"SET 'a'b\r\n",
        "count_cr_only": b"*1\rX",
        "long_count_line": b"*" + b"1" * 40 + b"\r\n",
        "long_inline": b"A" * 40 + b"\r\n",
    }


def frame(ftype, request_id, flags, fields, version=1, magic=b"SLRP", reserved=0, count=None,
          total=None):
    body = b"".join(struct.pack("<HI", t, len(d)) + d for t, d in fields)
    total = 24 + len(body) if total is None else total
    count = len(fields) if count is None else count
    return magic + struct.pack("<BBHQIHH", version, ftype, flags, request_id, total, count,
                               reserved) + body


def frame_seeds():
    return {
        "request": frame(1, 1, 0, [(1, b"echo"), (2, b"hello")]),
        "response": frame(2, 1, 0, [(2, b"hello")]),
        "error": frame(3, 7, 0, [(3, b"no such method")]),
        "ping": frame(4, 0, 0, []),
        "flags_and_big_id": frame(1, 0xFFFFFFFFFFFFFFFF, 0xFFFF, [(0xFFFF, b"x")]),
        "empty_fields": frame(1, 2, 0, [(1, b""), (2, b""), (3, b"")]),
        "binary_field": frame(1, 3, 0, [(9, bytes(range(64)))]),
        "pipelined": frame(1, 1, 0, [(1, b"a")]) + frame(1, 2, 0, [(1, b"b")]) + frame(4, 3, 0, []),
        "partial": frame(1, 1, 0, [(1, b"abcdef")])[:30],
        "bad_magic": frame(1, 1, 0, [], magic=b"SLRQ"),
        "http_bytes": b"GET / HTTP/1.1\r\n\r\n",
        "bad_version": frame(1, 1, 0, [], version=2),
        "bad_type": frame(9, 1, 0, []),
        "reserved_set": frame(1, 1, 0, [], reserved=1),
        "too_short": frame(1, 1, 0, [], total=23),
        "too_large": frame(1, 1, 0, [], total=0xFFFFFFFF)[:20],
        "too_many_fields": frame(1, 1, 0, [], count=2000)[:22],
        "truncated_field": frame(1, 1, 0, [], count=1, total=27) + b"\x01\x00\x00",
        "field_overruns": frame(1, 1, 0, [], count=1, total=31) + struct.pack("<HI", 1, 9) + b"x",
        "count_too_high": frame(1, 1, 0, [(1, b"x")], count=2),
        "count_too_low": frame(1, 1, 0, [(1, b"x"), (2, b"y")], count=1),
        "second_frame_bad": frame(4, 1, 0, []) + b"SLRX",
        # Inputs shaped for the encoder check (first 4 bytes: type, limits, buffer size).
        "encoder_recipe": b"\x00\x03\x40\x40" + b"field data for the encoder recipe",
        "encoder_small_buffer": b"\x01\x07\xff\x0d" + b"abcdefghijklmnop",
    }


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("http_parser_fuzz", http_seeds())
write("resp_parser_fuzz", resp_seeds())
write("frame_codec_fuzz", frame_seeds())
