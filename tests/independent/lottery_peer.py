#!/usr/bin/env python3
"""An independent Python peer for the lottery wire protocol (docs/protocol.md v1).

This file is owned by the independent cross-check (tests/independent.rs). It
is written from the text of docs/protocol.md and protocol-vectors.txt only, never
from the Rust sources, so that the Rust central and agency are checked against
a second reading of the spec. Standard library only (Python 3.11).

Roles:

* ``vectors FILE``: decodes every frame of the vectors file, checks the
  values its title names, re-encodes it and exits non-zero on any mismatch.
* ``agency``: sends one agency's CSV file to a central in pipelined BATCH
  frames, survives closed connections (reconnects and resumes from the
  central's stored count), sends DONE, asks GET_WINNERS wait=1 until it gets
  the WINNERS frames, and prints ``winners N doc1 doc2 ...``. Every frame it
  receives is checked strictly; any breach of the spec by the central makes
  it exit non-zero with the offending frame in hex.
* ``central``: a threaded TCP central on 127.0.0.1 with the spec's bet rules,
  stored counts, retry/overlap/gap semantics, DONE, the draw, parked
  GET_WINNERS, split WINNERS and the closing ERRORs. With
  ``--one-request-per-connection`` it closes every connection after one
  reply, like the original course server, so agencies must resume.
* ``probe``: drives a fresh central through the edge cases the spec
  settles (each bet rule, retry, overlap, gap, MISSING_BETS,
  AGENCY_CLOSED, UNKNOWN_AGENCY, a frame of exactly 8192 bytes, pipelining,
  parking, the draw, every closing ERROR) and lists every mismatch.

Exit codes: 0 success; 1 the peer broke the protocol (or a vector
mismatched); 2 bad usage or input file; 3 the central refused us
(INVALID_BET, UNKNOWN_AGENCY, ...); 4 could not connect for 30 s.
"""

import argparse
import csv
import datetime
import os
import signal
import socket
import struct
import sys
import threading
import time
import unicodedata
from collections import deque

# --------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------

MAX_FRAME = 8192  # a whole frame, the 2 length bytes included
MAX_LEN = MAX_FRAME - 2  # the largest value the len field may hold

ACK, BATCH, DONE, GET_WINNERS, WINNERS, NOT_READY, ERROR = range(1, 8)
TYPE_NAMES = {
    ACK: "ACK",
    BATCH: "BATCH",
    DONE: "DONE",
    GET_WINNERS: "GET_WINNERS",
    WINNERS: "WINNERS",
    NOT_READY: "NOT_READY",
    ERROR: "ERROR",
}

ERROR_CODES = {
    "MALFORMED": 1,
    "TOO_LARGE": 2,
    "UNKNOWN_TYPE": 3,
    "INVALID_BET": 4,
    "UNKNOWN_AGENCY": 5,
    "AGENCY_CLOSED": 6,
    "OUT_OF_ORDER": 7,
    "MISSING_BETS": 8,
    "SHUTTING_DOWN": 9,
    "STORAGE": 10,
    "FORBIDDEN": 11,
}
ERROR_NAMES = {v: k for k, v in ERROR_CODES.items()}
# Errors after which the central closes the connection.
CLOSING_ERRORS = {1, 2, 3, 9, 11}

BATCH_HEADER = 2 + 1 + 4 + 4 + 2  # len, type, agency, first, count
WINNERS_HEADER = 2 + 1 + 4 + 4 + 1 + 2  # len, type, agency, total, last, count


class Malformed(Exception):
    """A body that is shorter or longer than its type requires."""


class UnknownType(Exception):
    def __init__(self, type_):
        super().__init__(f"unknown type {type_:#04x}")
        self.type = type_


class Bet:
    __slots__ = ("first_name", "last_name", "document", "birthdate", "number")

    def __init__(self, first_name, last_name, document, birthdate, number):
        self.first_name = first_name  # bytes
        self.last_name = last_name  # bytes
        self.document = document  # bytes
        self.birthdate = birthdate  # (year, month, day)
        self.number = number

    def encode(self):
        y, m, d = self.birthdate
        return (
            str8(self.first_name)
            + str8(self.last_name)
            + str8(self.document)
            + struct.pack(">HBBH", y, m, d, self.number)
        )


class Msg:
    """A decoded frame: its type and named fields."""

    def __init__(self, type_, **fields):
        self.type = type_
        self.fields = fields

    def __getattr__(self, name):
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items() if k != "bets")
        if "bets" in self.fields:
            inner += f", bets=[{len(self.fields['bets'])} bets]"
        return f"{TYPE_NAMES.get(self.type, self.type)}({inner})"


def str8(data):
    if len(data) > 255:
        raise ValueError(f"str8 too long: {len(data)} bytes")
    return bytes([len(data)]) + data


class Reader:
    """Reads a body; running short or leaving bytes over is Malformed."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Malformed(f"body too short: need {self.pos + n} bytes, have {len(self.data)}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def str8(self):
        return self.take(self.u8())

    def date(self):
        return struct.unpack(">HBB", self.take(4))

    def finish(self):
        if self.pos != len(self.data):
            raise Malformed(f"body too long: {len(self.data) - self.pos} bytes left over")


def decode_body(type_, body):
    """Decodes the body of a frame of type `type_` into a Msg."""
    r = Reader(body)
    if type_ == ACK:
        msg = Msg(ACK, agency=r.u32(), stored=r.u32())
    elif type_ == BATCH:
        agency, first, count = r.u32(), r.u32(), r.u16()
        bets = []
        for _ in range(count):
            bets.append(Bet(r.str8(), r.str8(), r.str8(), r.date(), r.u16()))
        msg = Msg(BATCH, agency=agency, first=first, bets=bets)
    elif type_ == DONE:
        msg = Msg(DONE, agency=r.u32(), total=r.u32())
    elif type_ == GET_WINNERS:
        msg = Msg(GET_WINNERS, agency=r.u32(), wait=r.u8())
    elif type_ == WINNERS:
        agency, total, last, count = r.u32(), r.u32(), r.u8(), r.u16()
        docs = [r.str8() for _ in range(count)]
        msg = Msg(WINNERS, agency=agency, total=total, last=last, documents=docs)
    elif type_ == NOT_READY:
        msg = Msg(NOT_READY, done=r.u32(), expected=r.u32())
    elif type_ == ERROR:
        msg = Msg(ERROR, code=r.u8(), detail=r.u32(), message=r.str8())
    else:
        raise UnknownType(type_)
    r.finish()
    return msg


def decode_frame(data):
    """Decodes one whole frame (len field included) that must fill `data`."""
    if len(data) < 3:
        raise Malformed("frame shorter than 3 bytes")
    (n,) = struct.unpack(">H", data[:2])
    if n == 0:
        raise Malformed("len = 0")
    if n > MAX_LEN:
        raise Malformed(f"len {n} over the frame limit")
    if 2 + n != len(data):
        raise Malformed(f"len {n} does not match the {len(data) - 2} bytes given")
    return decode_body(data[2], data[3:])


def frame(type_, body):
    n = 1 + len(body)
    if n > MAX_LEN:
        raise ValueError(f"frame of {2 + n} bytes is over {MAX_FRAME}")
    return struct.pack(">HB", n, type_) + body


def enc_ack(agency, stored):
    return frame(ACK, struct.pack(">II", agency, stored))


def enc_batch(agency, first, encoded_bets):
    return frame(BATCH, struct.pack(">IIH", agency, first, len(encoded_bets)) + b"".join(encoded_bets))


def enc_done(agency, total):
    return frame(DONE, struct.pack(">II", agency, total))


def enc_get_winners(agency, wait):
    return frame(GET_WINNERS, struct.pack(">IB", agency, wait))


def enc_winners(agency, total, last, documents):
    return frame(
        WINNERS,
        struct.pack(">IIBH", agency, total, last, len(documents)) + b"".join(str8(d) for d in documents),
    )


def enc_not_ready(done, expected):
    return frame(NOT_READY, struct.pack(">II", done, expected))


def enc_error(name, detail, message):
    msg = message.encode("utf-8")
    assert b"|" not in msg
    return frame(ERROR, struct.pack(">BI", ERROR_CODES[name], detail) + str8(msg))


def encode_msg(msg):
    f = msg.fields
    if msg.type == ACK:
        return enc_ack(f["agency"], f["stored"])
    if msg.type == BATCH:
        return enc_batch(f["agency"], f["first"], [b.encode() for b in f["bets"]])
    if msg.type == DONE:
        return enc_done(f["agency"], f["total"])
    if msg.type == GET_WINNERS:
        return enc_get_winners(f["agency"], f["wait"])
    if msg.type == WINNERS:
        return enc_winners(f["agency"], f["total"], f["last"], f["documents"])
    if msg.type == NOT_READY:
        return enc_not_ready(f["done"], f["expected"])
    if msg.type == ERROR:
        return frame(ERROR, struct.pack(">BI", f["code"], f["detail"]) + str8(f["message"]))
    raise ValueError(msg.type)


class ConnectionLost(Exception):
    pass


class FrameTooLarge(Exception):
    def __init__(self, n):
        super().__init__(f"len {n} over the frame limit")
        self.len = n


class ZeroLength(Exception):
    pass


class FrameSocket:
    """Frames over a blocking socket. Reads are buffered, frames whole."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
                raise ConnectionLost(str(e)) from e
            if not chunk:
                raise ConnectionLost("closed by peer" + (f" inside a frame ({len(self.buf)} bytes buffered)" if self.buf else ""))
            self.buf += chunk

    def read_frame(self):
        """Returns (type, body, raw frame bytes). Checks len before the body arrives."""
        self._fill(2)
        (n,) = struct.unpack(">H", self.buf[:2])
        if n == 0:
            raise ZeroLength()
        if n > MAX_LEN:
            raise FrameTooLarge(n)
        self._fill(2 + n)
        raw = bytes(self.buf[: 2 + n])
        del self.buf[: 2 + n]
        return raw[2], raw[3:], raw

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
            raise ConnectionLost(str(e)) from e

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# Bet rules (the central's side)
# --------------------------------------------------------------------------


def valid_name(raw):
    if not 1 <= len(raw) <= 255:
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(unicodedata.category(ch) == "Cc" for ch in text)


def valid_document(raw):
    return 1 <= len(raw) <= 16 and all(0x30 <= b <= 0x39 for b in raw)


def valid_date(ymd, today):
    try:
        d = datetime.date(*ymd)
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= d <= today


def bet_is_valid(bet, today):
    return (
        valid_name(bet.first_name)
        and valid_name(bet.last_name)
        and valid_document(bet.document)
        and valid_date(bet.birthdate, today)
        and bet.number <= 9999
    )


# --------------------------------------------------------------------------
# vectors
# --------------------------------------------------------------------------


def check_title(title, msg):
    """Checks the values a vector's title names against the decoded frame."""
    problems = []
    words = title.split()
    name = words[0]
    if TYPE_NAMES.get(msg.type) != name:
        problems.append(f"type {TYPE_NAMES.get(msg.type)} but the title says {name}")
    for word in words[1:]:
        if word.endswith(","):
            word = word[:-1]
        if "=" not in word:
            continue
        key, _, value = word.partition("=")
        if key == "documents":
            continue
        if key == "message":
            continue
        if not value.isdigit():
            continue
        if key not in msg.fields:
            problems.append(f"title names {key} which {name} does not have")
        elif msg.fields[key] != int(value):
            problems.append(f"{key}={msg.fields[key]} but the title says {value}")
    if "documents=[" in title:
        listed = title.split("documents=[", 1)[1].split("]", 1)[0]
        want = [d.strip().encode() for d in listed.split(",") if d.strip()]
        if msg.documents != want:
            problems.append(f"documents {msg.documents} but the title says {want}")
    if "message='" in title:
        want = title.split("message='", 1)[1].rsplit("'", 1)[0].encode()
        if msg.message != want:
            problems.append(f"message {msg.message!r} but the title says {want!r}")
    if name == "ERROR":
        code_name = words[1]
        if ERROR_CODES.get(code_name) != msg.code:
            problems.append(f"code {msg.code} but the title says {code_name}")
    if name == "BATCH":
        m = [w for w in words if w.isdigit() or w in ("one", "two")]
        counts = {"one": 1, "two": 2}
        if m and m[0] in counts and counts[m[0]] != len(msg.bets):
            problems.append(f"{len(msg.bets)} bets but the title says {m[0]}")
    return problems


def run_vectors(path):
    title = None
    checked = 0
    failures = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("## "):
                title = line[3:]
                continue
            if line.startswith("#"):
                continue
            where = f"{path}:{lineno} ({title})"
            try:
                raw = bytes.fromhex(line)
                msg = decode_frame(raw)
            except (ValueError, Malformed, UnknownType) as e:
                print(f"FAIL {where}: does not decode: {e}", file=sys.stderr)
                failures += 1
                continue
            again = encode_msg(msg)
            if again != raw:
                print(f"FAIL {where}: re-encodes to {again.hex()}", file=sys.stderr)
                failures += 1
            for problem in check_title(title or "", msg):
                print(f"FAIL {where}: {problem}", file=sys.stderr)
                failures += 1
            if msg.type == BATCH:
                for i, bet in enumerate(msg.bets):
                    if not bet_is_valid(bet, datetime.date.today()):
                        print(f"FAIL {where}: bet {i} breaks the bet rules", file=sys.stderr)
                        failures += 1
            checked += 1
            title = None
    if checked == 0:
        print(f"FAIL {path}: no vectors found", file=sys.stderr)
        return 1
    print(f"vectors: {checked} frames checked, {failures} failures")
    return 1 if failures else 0


# --------------------------------------------------------------------------
# agency
# --------------------------------------------------------------------------


class Violation(Exception):
    """The central broke the protocol."""


class Refused(Exception):
    """The central refused us with an error we cannot recover from."""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def read_agency_csv(path):
    """The agency file as encoded BET bytes, in file order."""
    bets = []
    with open(path, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 5:
                raise ValueError(f"{path}:{lineno}: {len(row)} fields, want 5")
            first, last, doc, birth, number = row
            try:
                y, m, d = (int(p) for p in birth.split("-"))
                bet = Bet(first.encode(), last.encode(), doc.encode(), (y, m, d), int(number))
                bets.append(bet.encode())
            except (ValueError, struct.error) as e:
                raise ValueError(f"{path}:{lineno}: cannot encode {row!r}: {e}") from e
    return bets


class Agency:
    def __init__(self, args):
        self.host, _, port = args.server.rpartition(":")
        self.port = int(port)
        self.id = args.id
        self.batch = args.batch
        self.window = max(1, args.window)
        self.timeout = args.timeout
        self.bets = read_agency_csv(args.file)
        self.total = len(self.bets)
        self.stored = 0  # the central's stored count, as last reported
        self.done = False  # DONE acknowledged
        self.connections = 0
        self.batches_sent = 0
        self.fruitless = 0  # connections in a row that brought no reply
        self.winners_frames = 0

    # -- connections ------------------------------------------------------

    def connect(self):
        deadline = time.monotonic() + 30
        delay = 0.05
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=5)
                sock.settimeout(self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.connections += 1
                return FrameSocket(sock)
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise ConnectionRefusedError(f"cannot connect to {self.host}:{self.port} for 30 s: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def receive(self, conn, expected_types):
        try:
            type_, body, raw = conn.read_frame()
        except FrameTooLarge as e:
            raise Violation(f"central sent a frame with len {e.len} (> {MAX_LEN})") from e
        except ZeroLength as e:
            raise Violation("central sent a frame with len 0") from e
        except socket.timeout as e:
            raise Violation(f"no reply within {self.timeout} s (expecting {expected_types})") from e
        try:
            msg = decode_body(type_, body)
        except (Malformed, UnknownType) as e:
            raise Violation(f"bad frame {raw.hex()}: {e}") from e
        if TYPE_NAMES[msg.type] not in expected_types:
            raise Violation(f"got {msg!r} ({raw.hex()}) while expecting one of {expected_types}")
        self.fruitless = 0
        self.check(msg, raw)
        return msg

    def check(self, msg, raw):
        """Checks what every reply must hold, whatever the request."""
        def fail(why):
            raise Violation(f"{why}: {msg!r} = {raw.hex()}")

        if msg.type in (ACK, WINNERS) and msg.agency != self.id:
            fail(f"reply for agency {msg.agency}, we are {self.id}")
        if msg.type == ACK and msg.stored > self.total:
            fail(f"stored {msg.stored} is more than the {self.total} bets we have")
        if msg.type == ERROR:
            if msg.code not in ERROR_NAMES:
                fail(f"unknown error code {msg.code}")
            try:
                text = msg.message.decode("utf-8")
            except UnicodeDecodeError:
                fail("error message is not UTF-8")
            if "|" in text:
                fail("error message contains '|'")
            if msg.code in (1, 9) and msg.detail != 0:
                fail("detail must be 0 for this code")
        if msg.type == WINNERS:
            if msg.last not in (0, 1):
                fail(f"last = {msg.last}")
            for doc in msg.documents:
                if not valid_document(doc):
                    fail(f"winner document {doc!r} is not 1..16 ASCII digits")
        if msg.type == NOT_READY and msg.done > msg.expected:
            fail("NOT_READY done > expected")

    def closing_error(self, msg):
        """An error after which the central closes: reconnect or give up."""
        name = ERROR_NAMES[msg.code]
        if name == "SHUTTING_DOWN":
            raise ConnectionLost("central is shutting down")
        raise Refused(f"central answered {name} detail={msg.detail} ({msg.message!r}) to a well-formed frame")

    def refuse(self, msg):
        raise Refused(f"{ERROR_NAMES[msg.code]} detail={msg.detail} ({msg.message.decode(errors='replace')})")

    # -- bets -------------------------------------------------------------

    def next_batch(self, first):
        size = BATCH_HEADER
        chosen = []
        for bet in self.bets[first : first + self.batch]:
            if size + len(bet) > MAX_FRAME:
                break
            chosen.append(bet)
            size += len(bet)
        return enc_batch(self.id, first, chosen), len(chosen)

    def send_bets(self, conn):
        """Pipelines BATCH frames until the central has stored them all."""
        next_first = self.stored
        inflight = deque()  # (first, count)
        resync = False  # a reply told us to go back: drain, then resume
        while True:
            if not resync:
                while len(inflight) < self.window and next_first < self.total:
                    data, count = self.next_batch(next_first)
                    conn.send(data)
                    self.batches_sent += 1
                    inflight.append((next_first, count))
                    next_first += count
            if not inflight:
                if resync:
                    resync = False
                    next_first = self.stored
                    continue
                return
            first, count = inflight.popleft()
            msg = self.receive(conn, ("ACK", "ERROR"))
            if msg.type == ACK:
                if msg.stored < first + count:
                    raise Violation(f"ACK stored={msg.stored} for the batch {first}..{first + count}")
                if msg.stored < self.stored:
                    raise Violation(f"stored went back from {self.stored} to {msg.stored}")
                self.stored = msg.stored
                if self.stored > next_first and not resync:
                    # the central had more than we thought (a previous connection)
                    next_first = self.stored
                continue
            name = ERROR_NAMES[msg.code]
            if msg.code in CLOSING_ERRORS:
                self.closing_error(msg)
            if name == "OUT_OF_ORDER":
                if msg.detail >= first:
                    raise Violation(f"OUT_OF_ORDER detail={msg.detail} for a batch at {first}")
                if msg.detail < self.stored:
                    raise Violation(f"stored went back from {self.stored} to {msg.detail}")
                self.stored = msg.detail
                resync = True
            elif name == "AGENCY_CLOSED":
                if msg.detail != self.total:
                    raise Violation(f"AGENCY_CLOSED with stored={msg.detail}, but we have {self.total} bets")
                self.stored = msg.detail
                resync = True
            elif name == "STORAGE":
                log(f"agency {self.id}: STORAGE error, retrying from {self.stored}")
                time.sleep(0.2)
                resync = True
            else:
                self.refuse(msg)

    def send_done(self, conn):
        """True once DONE is acknowledged; False when bets are missing."""
        conn.send(enc_done(self.id, self.total))
        msg = self.receive(conn, ("ACK", "ERROR"))
        if msg.type == ACK:
            if msg.stored != self.total:
                raise Violation(f"DONE total={self.total} acknowledged with stored={msg.stored}")
            self.stored = msg.stored
            return True
        name = ERROR_NAMES[msg.code]
        if msg.code in CLOSING_ERRORS:
            self.closing_error(msg)
        if name == "MISSING_BETS":
            if msg.detail == self.total:
                raise Violation(f"MISSING_BETS with detail = total = {self.total}")
            if msg.detail > self.total:
                raise Violation(f"MISSING_BETS stored={msg.detail} > our {self.total} bets")
            log(f"agency {self.id}: MISSING_BETS, resuming from {msg.detail}")
            self.stored = msg.detail
            return False
        if name == "STORAGE":
            time.sleep(0.2)
            return False
        self.refuse(msg)

    def get_winners(self, conn):
        """Returns the documents once the whole WINNERS list arrived."""
        while True:
            conn.send(enc_get_winners(self.id, 1))
            documents = []
            total = None
            while True:
                msg = self.receive(conn, ("WINNERS", "NOT_READY", "ERROR"))
                if msg.type == NOT_READY:
                    if documents:
                        raise Violation("NOT_READY in the middle of a WINNERS list")
                    break  # ask again
                if msg.type == ERROR:
                    if msg.code in CLOSING_ERRORS:
                        self.closing_error(msg)
                    self.refuse(msg)
                if total is None:
                    total = msg.total
                elif msg.total != total:
                    raise Violation(f"WINNERS total changed from {total} to {msg.total}")
                self.winners_frames += 1
                documents.extend(msg.documents)
                if len(documents) > total:
                    raise Violation(f"{len(documents)} documents but total = {total}")
                if msg.last:
                    if len(documents) != total:
                        raise Violation(f"last WINNERS frame after {len(documents)} documents, total = {total}")
                    return documents
                if not msg.documents:
                    raise Violation("a WINNERS frame that is not the last carries no documents")

    def run(self):
        while True:
            try:
                conn = self.connect()
            except ConnectionRefusedError as e:
                log(f"agency {self.id}: {e}")
                return 4
            try:
                while True:
                    if not self.done:
                        if self.stored < self.total:
                            self.send_bets(conn)
                        if not self.send_done(conn):
                            continue
                        self.done = True
                    documents = self.get_winners(conn)
                    docs = [d.decode("ascii") for d in documents]
                    print(" ".join(["winners", str(len(docs))] + docs), flush=True)
                    log(
                        f"agency {self.id}: {self.total} bets, {len(docs)} winners, "
                        f"{self.connections} connections, {self.batches_sent} batches sent, "
                        f"winners in {self.winners_frames} WINNERS frames"
                    )
                    return 0
            except ConnectionLost as e:
                self.fruitless += 1
                if self.fruitless > 50:
                    log(f"agency {self.id}: {self.fruitless} connections in a row closed without a reply: {e}")
                    return 1
                time.sleep(0.01 if self.fruitless < 3 else 0.1)
            finally:
                conn.close()


def run_agency(args):
    try:
        agency = Agency(args)
    except (OSError, ValueError) as e:
        log(f"agency {args.id}: {e}")
        return 2
    try:
        return agency.run()
    except Violation as e:
        log(f"agency {args.id}: PROTOCOL VIOLATION by the central: {e}")
        return 1
    except Refused as e:
        log(f"agency {args.id}: refused by the central: {e}")
        return 3


# --------------------------------------------------------------------------
# central
# --------------------------------------------------------------------------


class Lottery:
    """The central's state; every method takes the lock."""

    def __init__(self, agencies, out_path, winning):
        self.agencies = agencies
        self.winning = winning
        self.cond = threading.Condition()
        self.stored = {a: 0 for a in range(1, agencies + 1)}
        self.closed = set()
        self.winners = {a: [] for a in range(1, agencies + 1)}
        self.served = set()
        self.drawn = False
        self.shutting_down = False
        self.total_bets = 0
        self.out = open(out_path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.out, quoting=csv.QUOTE_MINIMAL)
        self.sent_errors = {}
        self.internal_errors = 0
        self.connections = 0

    def known(self, agency):
        return 1 <= agency <= self.agencies

    def batch(self, agency, first, bets):
        """Returns the reply frame for a BATCH."""
        with self.cond:
            if not self.known(agency):
                return self.error("UNKNOWN_AGENCY", agency, "unknown agency")
            stored = self.stored[agency]
            if agency in self.closed:
                return self.error("AGENCY_CLOSED", stored, "agency already closed")
            today = datetime.date.today()
            for i, bet in enumerate(bets):
                if not bet_is_valid(bet, today):
                    return self.error("INVALID_BET", i, f"bet {i} breaks the rules")
            if first > stored:
                return self.error("OUT_OF_ORDER", stored, f"expected bet {stored}")
            new = bets[stored - first :]
            if new:
                for bet in new:
                    y, m, d = bet.birthdate
                    self.writer.writerow(
                        [
                            agency,
                            bet.first_name.decode(),
                            bet.last_name.decode(),
                            bet.document.decode(),
                            f"{y:04d}-{m:02d}-{d:02d}",
                            bet.number,
                        ]
                    )
                    if bet.number == self.winning:
                        self.winners[agency].append(bet.document)
                self.out.flush()
                os.fsync(self.out.fileno())
                self.stored[agency] = stored + len(new)
                self.total_bets += len(new)
            return enc_ack(agency, self.stored[agency])

    def done(self, agency, total):
        with self.cond:
            if not self.known(agency):
                return self.error("UNKNOWN_AGENCY", agency, "unknown agency")
            stored = self.stored[agency]
            # The DONE rules name no AGENCY_CLOSED: a closed agency's DONE
            # with another total is MISSING_BETS like any other.
            if total != stored:
                return self.error("MISSING_BETS", stored, f"stored {stored} of {total}")
            if agency in self.closed:
                return enc_ack(agency, stored)
            self.closed.add(agency)
            if len(self.closed) == self.agencies:
                self.drawn = True
                self.cond.notify_all()
            return enc_ack(agency, stored)

    def get_winners(self, agency, wait, park_timeout):
        """Returns (reply frame, None), or (None, documents) after the draw."""
        with self.cond:
            if not self.known(agency):
                return self.error("UNKNOWN_AGENCY", agency, "unknown agency"), None
            if wait:
                self.cond.wait_for(lambda: self.drawn or self.shutting_down, timeout=park_timeout)
            if self.drawn:
                return None, list(self.winners[agency])
            if self.shutting_down:
                return self.error("SHUTTING_DOWN", 0, "central is shutting down"), None
            return enc_not_ready(len(self.closed), self.agencies), None

    def mark_served(self, agency):
        with self.cond:
            self.served.add(agency)
            self.cond.notify_all()

    def error(self, name, detail, message):
        self.sent_errors[name] = self.sent_errors.get(name, 0) + 1
        return enc_error(name, detail, message)

    def count_error(self, name):
        with self.cond:
            self.sent_errors[name] = self.sent_errors.get(name, 0) + 1


def split_winners(agency, documents, per_frame):
    total = len(documents)
    frames = []
    chunk, size = [], WINNERS_HEADER
    for doc in documents:
        if chunk and (len(chunk) == per_frame or size + 1 + len(doc) > MAX_FRAME):
            frames.append(enc_winners(agency, total, 0, chunk))
            chunk, size = [], WINNERS_HEADER
        chunk.append(doc)
        size += 1 + len(doc)
    frames.append(enc_winners(agency, total, 1, chunk))
    return frames


def graceful_close(sock):
    """Closes after the peer has read our replies: FIN first, then drain
    what it still sends, so the kernel does not answer unread bytes with a
    reset that could destroy the reply in flight."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2.0)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


class Central:
    def __init__(self, args):
        self.args = args
        self.lottery = Lottery(args.agencies, args.out, args.winning)
        self.stop = threading.Event()
        self.threads = []

    def serve_connection(self, sock):
        conn = FrameSocket(sock)
        lottery = self.lottery
        try:
            while True:
                try:
                    type_, body, raw = conn.read_frame()
                except ZeroLength:
                    lottery.count_error("MALFORMED")
                    conn.send(enc_error("MALFORMED", 0, "frame len 0"))
                    return
                except FrameTooLarge as e:
                    lottery.count_error("TOO_LARGE")
                    conn.send(enc_error("TOO_LARGE", e.len, f"frame over {MAX_FRAME} bytes"))
                    return
                if type_ not in (BATCH, DONE, GET_WINNERS):
                    lottery.count_error("UNKNOWN_TYPE")
                    conn.send(enc_error("UNKNOWN_TYPE", type_, "not a request type"))
                    return
                try:
                    msg = decode_body(type_, body)
                    if type_ == BATCH and not msg.bets:
                        raise Malformed("BATCH with count 0")
                    if type_ == GET_WINNERS and msg.wait not in (0, 1):
                        raise Malformed("wait is neither 0 nor 1")
                except Malformed as e:
                    lottery.count_error("MALFORMED")
                    conn.send(enc_error("MALFORMED", 0, str(e).replace("|", "/")[:200]))
                    return
                if type_ == BATCH:
                    conn.send(lottery.batch(msg.agency, msg.first, msg.bets))
                elif type_ == DONE:
                    conn.send(lottery.done(msg.agency, msg.total))
                else:
                    reply, documents = lottery.get_winners(msg.agency, msg.wait, self.args.park_timeout)
                    if reply is not None:
                        conn.send(reply)
                        if reply[2] == ERROR and reply[3] == ERROR_CODES["SHUTTING_DOWN"]:
                            return
                    else:
                        frames = split_winners(msg.agency, documents, self.args.max_winners_per_frame)
                        conn.send(b"".join(frames))
                        lottery.mark_served(msg.agency)
                if self.args.one_request_per_connection:
                    return
        except ConnectionLost:
            pass
        except socket.timeout:
            pass
        except Exception as e:  # a bug in this peer: make it visible
            with lottery.cond:
                lottery.internal_errors += 1
            log(f"central: internal error: {e!r}")
        finally:
            graceful_close(sock)

    def run(self):
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.args.port))
        listener.listen(128)
        listener.settimeout(0.1)
        log(f"central: listening on 127.0.0.1:{self.args.port}, {self.args.agencies} agencies")
        lottery = self.lottery
        while not self.stop.is_set():
            with lottery.cond:
                if len(lottery.served) == lottery.agencies and not self.args.stay:
                    break
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError as e:
                log(f"central: accept: {e}")
                continue
            sock.settimeout(max(60.0, self.args.park_timeout * 2))
            with lottery.cond:
                lottery.connections += 1
            t = threading.Thread(target=self.serve_connection, args=(sock,), daemon=True)
            t.start()
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
        listener.close()
        with lottery.cond:
            lottery.shutting_down = True
            lottery.cond.notify_all()
        deadline = time.monotonic() + 3
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with lottery.cond:
            lottery.out.flush()
            os.fsync(lottery.out.fileno())
            lottery.out.close()
            errors = dict(lottery.sent_errors)
            internal = lottery.internal_errors
            total = lottery.total_bets
            connections = lottery.connections
        log(f"central: {connections} connections, errors sent {errors}, internal errors {internal}")
        print(f"central done: {lottery.agencies} agencies, {total} bets", flush=True)
        if internal:
            return 1
        if self.args.strict:
            bad = {k: v for k, v in errors.items() if k in ("MALFORMED", "TOO_LARGE", "UNKNOWN_TYPE", "INVALID_BET", "UNKNOWN_AGENCY")}
            if bad:
                log(f"central: --strict: the agencies caused {bad}")
                return 1
        return 0


def run_central(args):
    return Central(args).run()



# --------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------


def bet(first="Ana", last="Gómez", document="12345678", birthdate=(1990, 5, 17), number=1234):
    def b(x):
        return x if isinstance(x, bytes) else x.encode()

    return Bet(b(first), b(last), b(document), birthdate, number)


def ymd(d):
    return (d.year, d.month, d.day)


class Probe:
    """Drives a fresh central (winning number 7574) through the edge cases
    docs/protocol.md settles, checking every reply; see `run` for the cases.
    Checks go on after a mismatch, so one run lists every discrepancy."""

    def __init__(self, args):
        self.host, _, port = args.server.rpartition(":")
        self.port = int(port)
        self.failures = []
        self.checks = 0
        self.stored_rows = []  # what the central must have stored, in order per agency

    def connect(self):
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=5)
                sock.settimeout(5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return FrameSocket(sock)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def fail(self, step, why):
        self.failures.append(f"{step}: {why}")
        log(f"probe: MISMATCH {step}: {why}")

    def recv(self, conn, step):
        try:
            type_, body, raw = conn.read_frame()
        except (ConnectionLost, socket.timeout, FrameTooLarge, ZeroLength) as e:
            self.fail(step, f"no reply frame: {type(e).__name__} {e}")
            return None, b""
        try:
            return decode_body(type_, body), raw
        except (Malformed, UnknownType) as e:
            self.fail(step, f"undecodable reply {raw.hex()}: {e}")
            return None, raw

    def expect(self, conn, step, type_, **fields):
        """Reads one reply and checks its type and the given fields."""
        self.checks += 1
        msg, raw = self.recv(conn, step)
        if msg is None:
            return None
        want = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        if msg.type != type_:
            self.fail(step, f"want {TYPE_NAMES[type_]}({want}), got {msg!r} = {raw.hex()}")
            return msg
        for k, v in fields.items():
            if msg.fields.get(k) != v:
                self.fail(step, f"want {TYPE_NAMES[type_]}({want}), got {msg!r} = {raw.hex()}")
                break
        if msg.type == ERROR and b"|" in msg.message:
            self.fail(step, f"error message with '|': {msg.message!r}")
        return msg

    def expect_error(self, conn, step, name, detail):
        return self.expect(conn, step, ERROR, code=ERROR_CODES[name], detail=detail)

    def expect_closed(self, conn, step):
        self.checks += 1
        try:
            data = conn.sock.recv(1)
            if data:
                self.fail(step, f"connection still sends bytes ({data.hex()}) after a closing error")
        except socket.timeout:
            self.fail(step, "connection still open 5 s after a closing error")
        except OSError:
            pass  # reset: closed
        conn.close()

    def expect_silence(self, conn, step, seconds):
        self.checks += 1
        conn.sock.settimeout(seconds)
        try:
            data = conn.sock.recv(1, socket.MSG_PEEK)
            self.fail(step, f"a reply came while parked: {data.hex()}" if data else "connection closed while parked")
        except socket.timeout:
            pass
        finally:
            conn.sock.settimeout(5)

    def batch(self, conn, agency, first, bets):
        conn.send(enc_batch(agency, first, [b.encode() for b in bets]))

    def remember(self, agency, bets):
        for b in bets:
            y, m, d = b.birthdate
            self.stored_rows.append(
                [str(agency), b.first_name.decode(), b.last_name.decode(), b.document.decode(),
                 f"{y:04d}-{m:02d}-{d:02d}", str(b.number)]
            )

    def run(self, case):
        if case == "pipelined-done":
            self.pipelined_done()
        else:
            self.edges()
        if self.rows_out:
            with open(self.rows_out, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(self.stored_rows)
        print(f"probe: {self.checks} checks, {len(self.failures)} mismatches")
        for f in self.failures:
            print(f"MISMATCH {f}")
        return 1 if self.failures else 0

    def pipelined_done(self):
        """A fresh central with --agencies 1. The reply to a request sent
        behind DONE must see the DONE: the agency is closed, and as the only
        one, the draw has happened, so GET_WINNERS wait=0 gets WINNERS."""
        c = self.connect()
        winner = bet(document="42", number=7574)
        c.send(enc_batch(1, 0, [winner.encode()]) + enc_done(1, 1) + enc_get_winners(1, 0))
        self.expect(c, "pipelined BATCH", ACK, agency=1, stored=1)
        self.expect(c, "pipelined DONE of the only agency", ACK, agency=1, stored=1)
        self.expect(c, "GET_WINNERS wait=0 pipelined behind the last DONE", WINNERS,
                    agency=1, total=1, last=1, documents=[b"42"])
        self.remember(1, [winner])
        c.close()

    def edges(self):
        today = datetime.date.today()
        c = self.connect()

        # Before any DONE: NOT_READY at once with wait=0.
        c.send(enc_get_winners(1, 0))
        self.expect(c, "GET_WINNERS wait=0 before the draw", NOT_READY, done=0, expected=3)

        # Unknown agencies: an error, the connection stays open (and is
        # bound to none: a connection acts for one agency, revision 2).
        u = self.connect()
        for agency in (0, 4, 0xFFFFFFFF):
            self.batch(u, agency, 0, [bet()])
            self.expect_error(u, f"BATCH agency={agency}", "UNKNOWN_AGENCY", agency)
        u.send(enc_done(0, 0))
        self.expect_error(u, "DONE agency=0", "UNKNOWN_AGENCY", 0)
        u.send(enc_get_winners(9, 0))
        self.expect_error(u, "GET_WINNERS agency=9", "UNKNOWN_AGENCY", 9)
        u.close()

        # Each broken rule: INVALID_BET with the index of the first bad bet.
        bad = [
            ("empty first name", bet(first="")),
            ("empty last name", bet(last="")),
            ("control character in a name", bet(first="An\x07a")),
            ("DEL in a name", bet(last="G\x7fmez")),
            ("C1 control in a name", bet(last="G\u0085mez")),
            ("name not UTF-8", bet(first=b"An\xffa")),
            ("document with a letter", bet(document="1234a678")),
            ("document with a space", bet(document="1234 678")),
            ("empty document", bet(document="")),
            ("17-digit document", bet(document="1" * 17)),
            ("non-ASCII digit document", bet(document="١٢٣")),
            ("February 29 of a common year", bet(birthdate=(2001, 2, 29))),
            ("month 13", bet(birthdate=(1990, 13, 1))),
            ("day 0", bet(birthdate=(1990, 1, 0))),
            ("1899-12-31", bet(birthdate=(1899, 12, 31))),
            ("a date after today", bet(birthdate=ymd(today + datetime.timedelta(days=2)))),
            ("number 10000", bet(number=10000)),
            ("number 65535", bet(number=65535)),
        ]
        for why, b in bad:
            for index in (0, 2):
                bets = [bet(document=str(i + 1)) for i in range(3)]
                bets[index] = b
                self.batch(c, 1, 0, bets)
                self.expect_error(c, f"INVALID_BET ({why}) at index {index}", "INVALID_BET", index)
        # Nothing of a refused batch was stored: a batch at 1 is a gap.
        self.batch(c, 1, 1, [bet()])
        self.expect_error(c, "nothing stored after INVALID_BET", "OUT_OF_ORDER", 0)

        # The edges that are valid.
        edges = [
            bet(first="a", last="b", document="0", birthdate=(1900, 1, 1), number=0),
            bet(first="Ñ" * 127 + "a", last="x" * 255, document="0" * 16, birthdate=ymd(today - datetime.timedelta(days=1)), number=9999),
            bet(first="Tiago Nicolás", last="O'Brien, \"Jr\"", document="0000000000000042", birthdate=(2000, 2, 29), number=7574),
            bet(first="名前", last="Zoë", document="30904465", birthdate=(1999, 3, 17), number=2201),
            bet(first="Ana María", last="de la Cruz", document="7", birthdate=(1985, 12, 31), number=1),
            bet(first="Luz", last="Ríos", document="5", birthdate=(1970, 6, 6), number=7574),
            bet(first="Sol", last="Paz", document="6", birthdate=(1971, 7, 7), number=6),
            bet(first="Rey", last="Sur", document="0000000000000099", birthdate=(1972, 8, 8), number=7574),
        ]
        self.batch(c, 1, 0, edges[:5])
        self.expect(c, "first BATCH with every valid edge", ACK, agency=1, stored=5)
        self.batch(c, 1, 0, edges[:3])
        self.expect(c, "retry of stored bets", ACK, agency=1, stored=5)
        self.batch(c, 1, 3, edges[3:7])
        self.expect(c, "overlapping batch", ACK, agency=1, stored=7)
        self.remember(1, edges[:7])
        self.batch(c, 1, 9, [bet()])
        self.expect_error(c, "gap", "OUT_OF_ORDER", 7)
        c.send(enc_done(1, 8))
        self.expect_error(c, "DONE with a bet missing", "MISSING_BETS", 7)
        c.send(enc_done(1, 6))
        self.expect_error(c, "DONE with a total below stored", "MISSING_BETS", 7)
        self.batch(c, 1, 7, edges[7:])
        self.expect(c, "the missing bet", ACK, agency=1, stored=8)
        self.remember(1, edges[7:])
        c.send(enc_done(1, 8))
        self.expect(c, "DONE", ACK, agency=1, stored=8)
        c.send(enc_done(1, 8))
        self.expect(c, "repeated DONE", ACK, agency=1, stored=8)
        self.batch(c, 1, 8, [bet()])
        self.expect_error(c, "BATCH after DONE", "AGENCY_CLOSED", 8)
        c.send(enc_get_winners(1, 0))
        self.expect(c, "GET_WINNERS wait=0 with one agency done", NOT_READY, done=1, expected=3)

        # Agency 2 over a connection of its own.
        c1, c = c, self.connect()
        # A frame of exactly 8192 bytes is allowed.
        big = [bet(first="f" * 255, last="l" * 255, document=f"{i:016d}") for i in range(15)]
        big.append(bet(first="f" * 100, last="l" * 29, document="1" * 16))
        data = enc_batch(2, 0, [b.encode() for b in big])
        assert len(data) == MAX_FRAME, len(data)
        c.send(data)
        self.expect(c, "BATCH of exactly 8192 bytes", ACK, agency=2, stored=16)
        self.remember(2, big)

        # Pipelined requests are answered in order.
        tail = [bet(document="2", number=7574), bet(document="3"), bet(document="00000004", number=7574)]
        c.send(
            enc_batch(2, 16, [b.encode() for b in tail[:2]])
            + enc_batch(2, 18, [b.encode() for b in tail[2:]])
            + enc_batch(2, 17, [b.encode() for b in tail[1:]])
            + enc_done(2, 19)
        )
        self.expect(c, "pipelined BATCH 1", ACK, agency=2, stored=18)
        self.expect(c, "pipelined BATCH 2", ACK, agency=2, stored=19)
        self.expect(c, "pipelined retry", ACK, agency=2, stored=19)
        self.expect(c, "pipelined DONE", ACK, agency=2, stored=19)
        c.send(enc_get_winners(2, 0))
        self.expect(c, "GET_WINNERS wait=0 with two agencies done", NOT_READY, done=2, expected=3)
        self.remember(2, tail)

        # A parked GET_WINNERS holds back the frames behind it.
        parked = self.connect()
        parked.send(enc_get_winners(1, 1) + enc_get_winners(1, 0))
        self.expect_silence(parked, "GET_WINNERS wait=1 parks", 0.5)

        # Agency 3 sends nothing and closes: the draw.
        c2, c = c, self.connect()
        c.send(enc_done(3, 0))
        self.expect(c, "DONE with no bets", ACK, agency=3, stored=0)
        self.expect(parked, "the parked request after the draw", WINNERS, agency=1, total=3, last=1,
                    documents=[b"0000000000000042", b"5", b"0000000000000099"])
        self.expect(parked, "the request behind the parked one", WINNERS, agency=1, total=3, last=1,
                    documents=[b"0000000000000042", b"5", b"0000000000000099"])
        parked.close()
        c1.close()
        c2.close()
        c.send(enc_get_winners(3, 0))
        self.expect(c, "no winners", WINNERS, agency=3, total=0, last=1, documents=[])
        c.send(enc_get_winners(3, 1))
        self.expect(c, "wait=1 after the draw", WINNERS, agency=3, total=0, last=1, documents=[])
        self.batch(c, 3, 0, [bet()])
        self.expect_error(c, "BATCH after the draw", "AGENCY_CLOSED", 0)
        c.send(enc_done(3, 0))
        self.expect(c, "repeated DONE after the draw", ACK, agency=3, stored=0)
        c.close()

        # Framing errors: an ERROR, then the connection is closed.
        closing = [
            ("len 0", b"\x00\x00", "MALFORMED", 0),
            ("len 8191", b"\x1f\xff", "TOO_LARGE", 8191),
            ("len 65535", b"\xff\xff", "TOO_LARGE", 65535),
            ("type 0x08", frame(8, b""), "UNKNOWN_TYPE", 8),
            ("type 0x00", frame(0, b"\x00\x00\x00\x01"), "UNKNOWN_TYPE", 0),
            ("type 0xff", frame(0xFF, b""), "UNKNOWN_TYPE", 0xFF),
            ("DONE body of 7 bytes", frame(DONE, b"\x00" * 7), "MALFORMED", 0),
            ("DONE body of 9 bytes", frame(DONE, b"\x00\x00\x00\x01" + b"\x00" * 5), "MALFORMED", 0),
            ("GET_WINNERS body of 4 bytes", frame(GET_WINNERS, b"\x00\x00\x00\x01"), "MALFORMED", 0),
            ("BATCH with a byte left over", frame(BATCH, enc_batch(1, 8, [bet().encode()])[3:] + b"\x00"), "MALFORMED", 0),
            ("BATCH one bet short", frame(BATCH, struct.pack(">IIH", 1, 8, 2) + bet().encode()), "MALFORMED", 0),
            ("BATCH with a str8 past the end", frame(BATCH, struct.pack(">IIH", 1, 8, 1) + b"\x09Ana"), "MALFORMED", 0),
        ]
        for step, data, name, detail in closing:
            conn = self.connect()
            conn.send(data)
            if self.expect_error(conn, step, name, detail) is not None:
                self.expect_closed(conn, f"{step}: closed")
            conn.close()

        # A request split over many small writes is still one request.
        conn = self.connect()
        data = enc_get_winners(2, 0)
        for i in range(len(data)):
            conn.send(data[i : i + 1])
            time.sleep(0.01)
        self.expect(conn, "a frame sent one byte at a time", WINNERS, agency=2, total=2, last=1,
                    documents=[b"2", b"00000004"])
        conn.close()


def run_probe(args):
    probe = Probe(args)
    probe.rows_out = args.rows_out
    return probe.run(args.case)

# --------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="role", required=True)

    v = sub.add_parser("vectors", help="check the codec against a vectors file")
    v.add_argument("file")

    a = sub.add_parser("agency", help="send one agency's bets and print its winners")
    a.add_argument("--server", required=True, help="HOST:PORT")
    a.add_argument("--id", type=int, required=True)
    a.add_argument("--file", required=True)
    a.add_argument("--batch", type=int, default=100, help="most bets per BATCH")
    a.add_argument("--window", type=int, default=4, help="most BATCH frames in flight")
    a.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply")

    c = sub.add_parser("central", help="serve the lottery on 127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--agencies", type=int, required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--winning", type=int, default=7574)
    c.add_argument("--one-request-per-connection", action="store_true")
    c.add_argument("--park-timeout", type=float, default=5.0)
    c.add_argument("--max-winners-per-frame", type=int, default=1 << 16)
    c.add_argument("--strict", action="store_true", help="exit 1 if an agency ever caused a refusing error")
    c.add_argument("--stay", action="store_true", help="keep serving after the winners went out (until SIGTERM)")

    q = sub.add_parser("probe", help="check a fresh central (--agencies 3) on the spec's edge cases")
    q.add_argument("--server", required=True, help="HOST:PORT")
    q.add_argument("--rows-out", help="write the bets the central must have stored here (CSV)")
    q.add_argument("--case", choices=("edges", "pipelined-done"), default="edges",
                   help="edges: a central for 3 agencies; pipelined-done: a central for 1 agency")

    args = p.parse_args(argv)
    if args.role == "probe":
        return run_probe(args)
    if args.role == "vectors":
        return run_vectors(args.file)
    if args.role == "agency":
        if args.batch < 1:
            p.error("--batch must be at least 1")
        return run_agency(args)
    if args.max_winners_per_frame < 1:
        p.error("--max-winners-per-frame must be at least 1")
    return run_central(args)


if __name__ == "__main__":
    sys.exit(main())
