#!/usr/bin/python3
"""mailclients.py: the mail side of the integration tests (Python standard
library only): test mails with unique Message-IDs (some 8bit), checking what
was read back against what was sent, LMTP delivery from parallel senders,
an IMAP session with checked commands, POP3 RETR.  Also the failure type and
log function shared by mailtest.py and the scenarios.
"""
import imaplib
import poplib
import random
import re
import smtplib
import threading
import time
import uuid

PASSWORD = 'pass'
HOST = '127.0.0.1'

imaplib.Commands.setdefault('MOVE', ('SELECTED',))


class TestFailure(Exception):
    pass


def fail(msg):
    raise TestFailure(msg)


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def user_name(i):
    return f'user{i}@example.com'

# ---------------------------------------------------------------- mails

_SEVEN_BIT = bytes(range(0x20, 0x7f))
_EIGHT_BIT = bytes(range(0x20, 0x7f)) + bytes(range(0xa0, 0x100)) + \
    bytes(range(0x80, 0xa0))
_TR7 = bytes(_SEVEN_BIT[i % len(_SEVEN_BIT)] for i in range(256))
_TR8 = bytes(_EIGHT_BIT[i % len(_EIGHT_BIT)] for i in range(256))


class Mail:
    __slots__ = ('user', 'msgid', 'data')

    def __init__(self, user, msgid, data):
        self.user, self.msgid, self.data = user, msgid, data


def make_mail(user, size, rng, eightbit=False, tag='t'):
    """A CRLF mail of about size bytes with a unique Message-ID; eightbit
    mails carry raw bytes 0x80-0xff (Content-Transfer-Encoding: 8bit).
    Some body lines start with '.' or 'From ' to exercise dot-stuffing."""
    msgid = f'<{tag}.{uuid.UUID(int=rng.getrandbits(128)).hex}@oboxfs.test>'
    hdr = [b'From: Test Sender <sender@example.org>',
           f'To: <{user}>'.encode(),
           f'Subject: oboxfs test {tag} {size} bytes'.encode(),
           b'Date: Tue, 24 Nov 2026 04:00:00 +0000',
           f'Message-ID: {msgid}'.encode(),
           b'MIME-Version: 1.0']
    if eightbit:
        hdr += [b'Content-Type: text/plain; charset=iso-8859-1',
                b'Content-Transfer-Encoding: 8bit']
    else:
        hdr += [b'Content-Type: text/plain; charset=us-ascii']
    head = b'\r\n'.join(hdr) + b'\r\n\r\n'
    need = max(size - len(head), 16)
    raw = rng.randbytes(need).translate(_TR8 if eightbit else _TR7)
    lines = []
    pos = 0
    n = 0
    while pos < need:
        width = 20 + raw[pos] % 57
        line = raw[pos:pos + width]
        n += 1
        if n % 17 == 0:
            line = b'.' + line
        elif n % 23 == 0:
            line = b'From ' + line
        lines.append(line)
        pos += width
    return Mail(user, msgid, head + b'\r\n'.join(lines) + b'\r\n')


def make_mails(users, count, seed, min_size=1024, max_size=100 * 1024,
               tag='t'):
    """count mails spread round-robin over users; every third one 8bit."""
    rng = random.Random(seed)
    return [make_mail(users[i % len(users)],
                      rng.randint(min_size, max_size), rng,
                      eightbit=(i % 3 == 2), tag=tag)
            for i in range(count)]


_MSGID_RE = re.compile(rb'^Message-ID: (<[^>\r\n]+>)\r?$', re.M | re.I)
_ADDED_RE = re.compile(rb'^(Return-Path|Delivered-To|Received):|^[ \t]')


def message_id(data):
    m = _MSGID_RE.search(data)
    return m.group(1).decode() if m else None


def check_delivered(got, mail, what):
    """got (as read back) must be mail.data with only the trace headers
    Dovecot's LMTP adds (Return-Path, Delivered-To, Received) in front."""
    want = mail.data
    if not got.endswith(want):
        n = 0
        while n < min(len(got), len(want)) and got[-1 - n] == want[-1 - n]:
            n += 1
        fail(f'{what}: {mail.msgid} read back differs from what was sent: '
             f'got {len(got)} bytes, sent {len(want)}; they differ '
             f'{n} bytes before the end (near {got[-n - 40:-n + 1 or None]!r})')
    for line in got[:len(got) - len(want)].split(b'\r\n')[:-1]:
        if not _ADDED_RE.match(line):
            fail(f'{what}: {mail.msgid}: unexpected line before the '
                 f'original header: {line[:100]!r}')


# ---------------------------------------------------------------- clients

class Lmtp:
    """One LMTP session; deliver() sends one mail to its one recipient."""

    def __init__(self, port):
        self.c = smtplib.LMTP(HOST, port, timeout=120)

    def deliver(self, mail):
        try:
            refused = self.c.sendmail('sender@example.org', [mail.user],
                                      mail.data, mail_options=['BODY=8BITMIME'])
        except smtplib.SMTPException as e:
            fail(f'LMTP delivery of {mail.msgid} to {mail.user} failed: {e}')
        if refused:
            fail(f'LMTP refused {mail.msgid}: {refused}')

    def close(self):
        try:
            self.c.quit()
        except (smtplib.SMTPException, OSError):
            self.c.close()


# (LMTP port, user) pairs whose INBOX deliver_parallel() has seen delivered to
_INBOX_MADE = set()


def deliver_parallel(port, mails, senders=4):
    """Deliver mails over LMTP from `senders` threads, each with its own
    session.  Returns the elapsed seconds; raises on the first failure.

    A user's first mail through this port is delivered alone, before the
    parallel sessions start: Dovecot 2.3.19 itself races when two sessions
    create a new user's sdbox INBOX at once, on a plain directory too (an
    EDEADLK panic on dovecot.list.index.log: 4 in 300 tries of 4 sessions
    on 2 new users; or "uidvalidity=0, but next_uid=2"), and an MTA would
    just retry; the tests need every Dovecot error line to be oboxfs's."""
    first = {}
    for m in mails:
        if (port, m.user) not in _INBOX_MADE:
            first.setdefault(m.user, m)
    t0 = time.monotonic()
    if first:
        c = Lmtp(port)
        try:
            for m in first.values():
                c.deliver(m)
                _INBOX_MADE.add((port, m.user))
        finally:
            c.close()
        done = set(id(m) for m in first.values())
        mails = [m for m in mails if id(m) not in done]
    chunks = [mails[i::senders] for i in range(senders)]
    errors = []

    def work(chunk):
        try:
            c = Lmtp(port)
            try:
                for m in chunk:
                    c.deliver(m)
            finally:
                c.close()
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)
    run_threads(work, chunks)
    elapsed = time.monotonic() - t0
    if errors:
        fail(f'{len(errors)} of {senders} LMTP senders failed; first: '
             f'{errors[0]}')
    return elapsed


def run_threads(fn, args_list):
    """Run fn(arg) in one thread per arg; re-raise the first exception."""
    errors = []

    def wrap(a):
        try:
            fn(a)
        except BaseException as e:  # noqa: B902 - re-raised in caller
            errors.append(e)
    threads = [threading.Thread(target=wrap, args=(a,)) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


_UID_RE = re.compile(rb'\bUID (\d+)')
_FLAGS_RE = re.compile(rb'\bFLAGS \(([^)]*)\)')


class Imap:
    """A logged-in IMAP session with checked commands."""

    def __init__(self, port, user):
        self.user = user
        self.c = imaplib.IMAP4(HOST, port, timeout=120)
        self.ok('login', user, PASSWORD)
        self.folder = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def ok(self, cmd, *args):
        try:
            typ, data = getattr(self.c, cmd)(*args)
        except imaplib.IMAP4.error as e:
            fail(f'IMAP {self.user} {cmd} {args}: {e}')
        if typ != 'OK':
            fail(f'IMAP {self.user} {cmd} {args}: {typ} {data}')
        return data

    def uid(self, cmd, *args):
        return self.ok('uid', cmd, *args)

    def select(self, folder='INBOX', readonly=False):
        data = self.ok('select', _q(folder), readonly)
        self.folder = folder
        return int(data[0])

    def status(self, folder):
        data = self.ok('status', _q(folder), '(MESSAGES UIDNEXT UIDVALIDITY)')
        return {k.decode(): int(v) for k, v in
                re.findall(rb'(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)', data[0])}

    def uids(self):
        data = self.uid('SEARCH', 'ALL')
        return [int(x) for x in data[0].split()]

    def folders(self, selectable=False):
        """Names from LIST "" *; selectable: without \\Noselect ones."""
        out = []
        for line in self.ok('list', '""', '*'):
            m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line or b'')
            if not m:
                fail(f'IMAP {self.user} LIST: cannot parse {line!r}')
            if selectable and re.search(rb'(?i)\\(Noselect|NonExistent)',
                                        m.group(1)):
                continue
            name = m.group(2).decode()
            out.append(name[1:-1] if name.startswith('"') else name)
        return sorted(out)

    def fetch_bodies(self, uidset='1:*'):
        """uid -> BODY[] bytes (not setting \\Seen)."""
        out = {}
        for item in self.uid('FETCH', uidset, '(UID BODY.PEEK[])'):
            if isinstance(item, tuple):
                m = _UID_RE.search(item[0])
                if not m:
                    fail(f'IMAP FETCH: no UID in {item[0][:100]!r}')
                out[int(m.group(1))] = item[1]
        return out

    def fetch_flags(self, uidset='1:*'):
        """uid -> set of flags."""
        out = {}
        for item in self.uid('FETCH', uidset, '(UID FLAGS)'):
            if isinstance(item, tuple):
                item = item[0]
            if not item:
                continue
            m, f = _UID_RE.search(item), _FLAGS_RE.search(item)
            if m and f:
                out[int(m.group(1))] = set(f.group(1).decode().split())
        return out

    def store(self, uidset, op, flags):
        self.uid('STORE', uidset, op, f'({flags})')


def _q(name):
    return '"' + name.replace('\\', '\\\\').replace('"', '\\"') + '"'


def uidset(uids):
    return ','.join(str(u) for u in uids)


def pop3_retr_all(port, user):
    """All mails of user via POP3 RETR (no DELE)."""
    p = poplib.POP3(HOST, port, timeout=120)
    try:
        p.user(user)
        p.pass_(PASSWORD)
        count, _ = p.stat()
        out = []
        for i in range(1, count + 1):
            _, lines, _ = p.retr(i)
            out.append(b'\r\n'.join(lines) + b'\r\n')
        p.quit()
        return out
    except poplib.error_proto as e:
        fail(f'POP3 {user}: {e}')
    finally:
        p.close()
