#!/usr/bin/python3
"""faultload.py: mixed Dovecot load under store faults and daemon kills, for
test_dovecot_store_faults_on_s3.py, test_dovecot_kill_loop.py and
bench/reliability-run (the long versions).  Python stdlib only.

- FaultProxy: tests/fixtures/s3-fault-proxy.py as a child process in front of
  the test S3 (Swift), its mode switched at run time (pass, error, latency,
  reset, down).
- MixedLoad: 8 LMTP senders (every delivery recorded: ack 2xx, temp 4xx, perm
  5xx or conn = the session failed, with its duration), 4 IMAP readers
  (login, SELECT, FETCH of the newest bodies, checked against what was sent,
  sometimes a flag STORE, logout; errors counted), a prober timing the
  file-system calls a mail delivery makes on the mount, as Dovecot's maildir
  does them (open in tmp/, write, fsync = the mail's PUT with
  store_on_fsync, close, rename into new/ = no store request unless the
  fsync's failed, stat, read, readdir, rename into cur/ = no store
  request; a mail
  written in cur/ and fsynced = its PUT; the stats file), and a stats
  sampler.  The prober's user is PROBE_USER.
- check_present(): every acknowledged mail in its user's INBOX over IMAP with
  its bytes (by Message-ID); unacknowledged ones may be there, intact.
- store_fault_run() and kill_loop_run(): the two scenarios, short (CI) or
  long (OBOXFS_RELIABILITY_LONG=1), results as a table in the log and as JSON
  in OBOXFS_RELIABILITY_RESULTS (a file, appended) when set.

The retry budget: an object-store operation is retried for retry_timeout
seconds (default 60) and one attempt may take request_timeout seconds (the
first one always gets all of it), so a FUSE request that makes one store
request waits at most max(request_timeout, retry_timeout) + a back-off step;
that (plus FS_SLACK_S) is the bound the tests hold the fsync of a mail to
(one FUSE request that stores it).

A rename that stores a mail waits longer: the kernel holds the file
system's rename mutex (s_vfs_rename_mutex, taken for every rename between
two directories) while oboxfs stores the mail inside the rename, so all
such renames on one mount store one mail at a time, and one stuck behind
others waits for theirs too.  With store_on_fsync (the default) a
delivery's rename(tmp/X, new/X) stores nothing (the fsync in tmp/ did);
it still stores when that fsync was not done or failed.  The tests report
the longest rename and LMTP transaction and hold them to the fault's
duration + the bound (no hang).
"""
import imaplib
import json
import os
import random
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mailclients import HOST, Imap, make_mail, message_id  # noqa: E402
from mailtest import (FIXTURES, TestFailure, add_cleanup, fail,  # noqa: E402
                      log, remove_cleanup)

FS_SLACK_S = 5.0
PROBE_USER = 'probe@example.com'
LONG = os.environ.get('OBOXFS_RELIABILITY_LONG') == '1'


# ---------------------------------------------------------------- the proxy

class FaultProxy:
    """s3-fault-proxy.py in front of the S3 endpoint http://127.0.0.1:PORT."""

    def __init__(self, env, upstream_endpoint, seed):
        m = re.match(r'^http://127\.0\.0\.1:(\d+)/?$', upstream_endpoint)
        if not m:
            fail(f'the fault proxy needs an http://127.0.0.1:PORT endpoint, '
                 f'not {upstream_endpoint}')
        self.upstream_port = int(m.group(1))
        self.seed = seed
        self.log_path = env.path('s3-fault-proxy.log')
        self.proc = None
        self._entry = None

    def start(self):
        logf = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(FIXTURES, 's3-fault-proxy.py'),
             str(self.upstream_port), '--seed', str(self.seed)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=logf,
            start_new_session=True)
        logf.close()
        self._entry = add_cleanup('s3-fault-proxy', self.stop)
        got = {}
        for _ in range(3):
            line = self.proc.stdout.readline().decode()
            k, _, v = line.strip().partition(' ')
            got[k] = v
        if 'PORT' not in got or 'CONTROL' not in got:
            self.stop()
            fail(f's3-fault-proxy.py did not start (got {got}); log '
                 f'{self.log_path}')
        self.port, self.control = int(got['PORT']), int(got['CONTROL'])
        self.endpoint = f'http://127.0.0.1:{self.port}'
        log(f's3-fault-proxy on port {self.port} -> {self.upstream_port} '
            f'(control {self.control}, seed {got.get("SEED")})')
        return self

    def cmd(self, line):
        with socket.create_connection(('127.0.0.1', self.control),
                                      timeout=10) as s:
            s.sendall(line.encode() + b'\n')
            reply = s.makefile('rb').readline().decode().strip()
        if not reply.startswith('OK'):
            fail(f's3-fault-proxy: "{line}": {reply}')
        return reply[3:]

    def mode(self, *words):
        self.cmd('mode ' + ' '.join(str(w) for w in words))
        log(f'proxy mode: {" ".join(str(w) for w in words)}')

    def stats(self):
        return json.loads(self.cmd('stats'))

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        remove_cleanup(self._entry)


# ---------------------------------------------------------------- the load

class Delivery:
    __slots__ = ('mail', 'outcome', 'code', 'reply', 't0', 't1')

    def __init__(self, mail, outcome, code, reply, t0, t1):
        self.mail, self.outcome, self.code = mail, outcome, code
        self.reply, self.t0, self.t1 = reply, t0, t1

    @property
    def secs(self):
        return self.t1 - self.t0


class MixedLoad:
    """senders LMTP senders, readers IMAP readers, a prober and a stats
    sampler on one mount + Dovecot, until stop()."""

    def __init__(self, dc, mnt, users, sent, tag, seed, senders=8, readers=4,
                 max_size=32 * 1024, lmtp_timeout=300):
        self.dc, self.mnt, self.users, self.sent = dc, mnt, users, sent
        self.tag, self.seed = tag, seed
        self.nsenders, self.nreaders = senders, readers
        self.max_size, self.lmtp_timeout = max_size, lmtp_timeout
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.deliveries = []
        self.reader_ops = self.reader_errors = 0
        self.reader_max = 0.0
        self.reader_error_samples = []
        self.corrupt = []          # bodies read back that differ from sent
        self.fs_calls = 0
        self.fs_errors = 0
        self.fs_error_samples = []
        self.fs_max = (0.0, '')
        self.fs_max_by_op = {}
        self.samples = []          # (monotonic, stats dict)
        self.threads = []

    # -- senders
    def _sender(self, i):
        rng = random.Random(f'{self.seed}-{self.tag}-s{i}')
        c = None
        n = 0
        while not self.stop_ev.is_set():
            user = rng.choice(self.users)
            m = make_mail(user, rng.randint(1024, self.max_size), rng,
                          eightbit=(n % 3 == 2), tag=self.tag)
            n += 1
            with self.lock:
                self.sent[m.msgid] = m
            t0 = time.monotonic()
            code, reply = None, ''
            try:
                if c is None:
                    c = smtplib.LMTP(HOST, self.dc.lmtp_port,
                                     timeout=self.lmtp_timeout)
                    c.ehlo()
                code, reply = c.mail('sender@example.org', ['BODY=8BITMIME'])
                if code == 250:
                    code, reply = c.rcpt(user)
                    if code in (250, 251):
                        try:
                            code, reply = c.data(m.data)
                        except smtplib.SMTPDataError as e:
                            code, reply = e.smtp_code, e.smtp_error
                outcome = ('ack' if 200 <= code < 300 else
                           'temp' if 400 <= code < 500 else
                           'perm' if 500 <= code < 600 else 'conn')
                if outcome != 'ack':
                    try:
                        c.rset()
                    except (smtplib.SMTPException, OSError):
                        c.close()
                        c = None
            except (smtplib.SMTPException, OSError) as e:
                outcome, reply = 'conn', repr(e)
                if c is not None:
                    c.close()
                c = None
            if isinstance(reply, bytes):
                reply = reply.decode('utf-8', 'replace')
            d = Delivery(m, outcome, code, reply, t0, time.monotonic())
            with self.lock:
                self.deliveries.append(d)
            if outcome in ('temp', 'conn'):
                time.sleep(0.2)  # an MTA would back off too
        if c is not None:
            try:
                c.quit()
            except (smtplib.SMTPException, OSError):
                c.close()

    # -- readers
    def _reader(self, i):
        rng = random.Random(f'{self.seed}-{self.tag}-r{i}')
        user = self.users[i % len(self.users)]
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                with Imap(self.dc.imap_port, user) as c:
                    typ, data = c.c.select('INBOX')
                    if typ != 'OK':
                        raise TestFailure(f'SELECT: {typ} {data}')
                    n = int(data[0])
                    if n:
                        typ, items = c.c.fetch(f'{max(1, n - 9)}:{n}',
                                               '(UID BODY.PEEK[])')
                        if typ != 'OK':
                            raise TestFailure(f'FETCH: {typ} {items}')
                        for it in items:
                            if isinstance(it, tuple):
                                self._check_body(user, it[1])
                        if rng.random() < 0.3:
                            typ, _ = c.c.store(str(rng.randint(1, n)),
                                               '+FLAGS', '(\\Seen)')
                            if typ != 'OK':
                                raise TestFailure(f'STORE: {typ}')
                with self.lock:
                    self.reader_ops += 1
            except (TestFailure, imaplib.IMAP4.error, OSError) as e:
                with self.lock:
                    self.reader_errors += 1
                    if len(self.reader_error_samples) < 10:
                        self.reader_error_samples.append(f'{user}: {e}'[:300])
                time.sleep(0.2)
            dt = time.monotonic() - t0
            with self.lock:
                self.reader_max = max(self.reader_max, dt)
            time.sleep(0.05)

    def _check_body(self, user, body):
        mid = message_id(body)
        m = self.sent.get(mid)
        if m is None or m.user != user or not body.endswith(m.data):
            with self.lock:
                self.corrupt.append(f'IMAP {user}: {mid}: ' + (
                    'unknown Message-ID' if m is None else
                    'in the wrong user' if m.user != user else
                    f'{len(body)} bytes differ from the {len(m.data)} sent'))

    # -- prober: the file-system calls of a delivery, timed
    def _timed(self, what, fn, *args):
        t0 = time.monotonic()
        try:
            return fn(*args)
        except OSError as e:
            with self.lock:
                self.fs_errors += 1
                if len(self.fs_error_samples) < 10:
                    self.fs_error_samples.append(f'{what}: {e}')
            raise
        finally:
            dt = time.monotonic() - t0
            with self.lock:
                self.fs_calls += 1
                if dt > self.fs_max[0]:
                    self.fs_max = (dt, what)
                if dt > self.fs_max_by_op.get(what, 0):
                    self.fs_max_by_op[what] = dt

    def _prober(self):
        rng = random.Random(f'{self.seed}-{self.tag}-p')
        base = os.path.join(self.mnt.mountpoint, PROBE_USER, 'Maildir')
        k = 0
        while not self.stop_ev.is_set():
            k += 1
            name = f'{int(time.time())}.P{os.getpid()}Q{k}.{self.tag}'
            try:
                for sub in ('tmp', 'new'):
                    p = os.path.join(base, sub)
                    if not os.path.isdir(p):
                        self._timed('mkdir', os.makedirs, p, 0o700, True)
                tmp = os.path.join(base, 'tmp', name)
                new = os.path.join(base, 'new', name)
                data = rng.randbytes(rng.randint(500, 8000))
                fd = self._timed('open', os.open, tmp,
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    self._timed('write', os.write, fd, data)
                    # Dovecot's maildir save fsyncs the mail in tmp/
                    # (mail_fsync != never): stored there
                    self._timed('fsync', os.fsync, fd)
                finally:
                    self._timed('close', os.close, fd)
                self._timed('rename', os.rename, tmp, new)
                self._timed('stat', os.stat, new)
                got = self._timed('read', _read_file, new)
                if got != data:
                    with self.lock:
                        self.corrupt.append(f'probe {new}: read back '
                                            f'{len(got)} bytes, wrote '
                                            f'{len(data)}, differing')
                self._timed('readdir', os.listdir,
                            os.path.join(base, 'new'))
                # what Dovecot does when it sees the mail: new/ -> cur/, a
                # rename that needs no store request
                self._timed('rename new->cur', os.rename, new,
                            os.path.join(base, 'cur', name + ':2,S'))
            except OSError:
                time.sleep(0.2)
            time.sleep(0.1)

    def _fsyncer(self):
        """Mails written in place (cur/) and fsynced: stored by the fsync,
        one FUSE request that holds no kernel rename lock."""
        rng = random.Random(f'{self.seed}-{self.tag}-f')
        base = os.path.join(self.mnt.mountpoint, PROBE_USER, 'Maildir')
        k = 0
        while not self.stop_ev.is_set():
            k += 1
            cur = os.path.join(base, 'cur', f'{int(time.time())}.P'
                               f'{os.getpid()}F{k}.{self.tag}:2,S')
            try:
                if not os.path.isdir(os.path.dirname(cur)):
                    self._timed('mkdir', os.makedirs, os.path.dirname(cur),
                                0o700, True)
                fd = self._timed('open', os.open, cur,
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    self._timed('write', os.write, fd,
                                rng.randbytes(rng.randint(500, 8000)))
                    self._timed('fsync', os.fsync, fd)
                finally:
                    self._timed('close', os.close, fd)
            except OSError:
                time.sleep(0.2)
            time.sleep(0.1)

    def _sampler(self):
        while not self.stop_ev.wait(0.5):
            try:
                s = self._timed('read .oboxfs-stats', self.mnt.stats)
            except (OSError, TestFailure):
                continue
            with self.lock:
                self.samples.append((time.monotonic(), s))

    def start(self):
        self.t_start = time.monotonic()
        for fn, n in ((self._sender, self.nsenders),
                      (self._reader, self.nreaders),
                      (self._prober, 1), (self._fsyncer, 1),
                      (self._sampler, 1)):
            for i in range(n):
                t = threading.Thread(target=fn, args=(i,) if n > 1 or fn in (
                    self._sender, self._reader) else (), daemon=True)
                t.start()
                self.threads.append(t)
        return self

    def stop(self, timeout=None):
        self.stop_ev.set()
        deadline = time.monotonic() + (timeout or self.lmtp_timeout + 60)
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = sum(t.is_alive() for t in self.threads)
        self.t_stop = time.monotonic()
        if alive:
            fail(f'{alive} load threads still blocked '
                 f'{timeout or self.lmtp_timeout + 60} s after the load '
                 'was told to stop (a hung file-system or IMAP/LMTP call)')

    # -- results
    def counts(self, since=None, until=None):
        ds = [d for d in self.deliveries
              if (since is None or d.t0 >= since) and
              (until is None or d.t0 < until)]
        out = {k: sum(d.outcome == k for d in ds)
               for k in ('ack', 'temp', 'perm', 'conn')}
        out['attempted'] = len(ds)
        out['lmtp_max_s'] = round(max((d.secs for d in ds), default=0), 2)
        return out


def _read_file(path):
    with open(path, 'rb') as f:
        return f.read()


# ---------------------------------------------------------------- checks

def fetch_inboxes(dc, users, tries=1):
    """{user: {msgid: [bodies]}} of every INBOX, over IMAP.  tries > 1: a
    failing FETCH (a store fault injected above the retries fails a cache
    miss, and Dovecot then ends the session) is done again mail by mail in
    new sessions, each mail up to tries times."""
    out = {}
    for user in users:
        try:
            with Imap(dc.imap_port, user) as c:
                c.select('INBOX', readonly=True)
                bodies = c.fetch_bodies()
        except (TestFailure, imaplib.IMAP4.error, OSError) as e:
            if tries <= 1:
                raise
            bodies = _fetch_one_by_one(dc, user, tries, e)
        got = {}
        for body in bodies.values():
            got.setdefault(message_id(body), []).append(body)
        out[user] = got
    return out


def _fetch_one_by_one(dc, user, tries, why):
    bodies, again, c = {}, 0, None
    try:
        for t in range(tries):
            try:
                c = Imap(dc.imap_port, user)
                c.select('INBOX', readonly=True)
                uids = sorted(c.fetch_flags())
                break
            except (TestFailure, imaplib.IMAP4.error, OSError):
                if t == tries - 1:
                    raise
                c = None
        for uid in uids:
            for t in range(tries):
                try:
                    if c is None:
                        c = Imap(dc.imap_port, user)
                        c.select('INBOX', readonly=True)
                    bodies.update(c.fetch_bodies(str(uid)))
                    break
                except (TestFailure, imaplib.IMAP4.error, OSError):
                    if t == tries - 1:
                        raise
                    again += 1
                    if c is not None:
                        c.close()
                    c = None
    finally:
        if c is not None:
            c.close()
    log(f'{user}: FETCH failed ({str(why)[:80]}); fetched mail by mail, '
        f'{again} FETCHes done again')
    return bodies


def check_present(what, dc, users, deliveries, sent, tries=1):
    """Every acknowledged delivery is in its user's INBOX with its bytes;
    a mail appears at most once; any other mail there is one that was sent
    (unacknowledged), intact.  Returns (acked present, unacked present,
    the set of Message-IDs there)."""
    got = fetch_inboxes(dc, users, tries)
    problems = []
    acked = {d.mail.msgid for d in deliveries if d.outcome == 'ack'}
    present = unacked_present = 0
    for user in users:
        for mid, bodies in got[user].items():
            m = sent.get(mid)
            if m is None or m.user != user:
                problems.append(f'{user}: unexpected mail {mid}')
                continue
            if len(bodies) > 1:
                problems.append(f'{user}: {mid} is there {len(bodies)} times')
            for b in bodies:
                if not b.endswith(m.data):
                    problems.append(f'{user}: {mid}: {len(b)} bytes, not the '
                                    f'{len(m.data)} sent')
            if mid in acked:
                present += 1
            else:
                unacked_present += 1
    missing = [d for d in deliveries if d.outcome == 'ack' and
               d.mail.msgid not in got[d.mail.user]]
    if missing:
        problems.insert(0, f'{len(missing)} of {len(acked)} acknowledged '
                        'mails missing, e.g. ' + ', '.join(
                            f'{d.mail.user} {d.mail.msgid}'
                            for d in missing[:5]))
    if problems:
        fail(f'{what}: ' + '; '.join(problems[:20]))
    log(f'{what}: all {present} acknowledged mails there with their bytes '
        f'(+{unacked_present} unacknowledged ones, intact)')
    return present, unacked_present, {mid for u in users for mid in got[u]}


def dovecot_bad_lines(dc, pattern=r'(?i)corrupt|\b(Panic|Fatal):', start=0,
                      end=None):
    """Lines of dc's log matching pattern, in its bytes start..end.  A
    panic's "Raw backtrace:" line is left out: its symbols are the nearest
    exported ones, e.g. mail_transaction_log_file_set_corrupted for a panic
    that has nothing to do with corruption (the Panic line itself is
    matched)."""
    try:
        with open(dc.log_path, 'rb') as f:
            f.seek(start)
            text = f.read(-1 if end is None else max(0, end - start))
    except FileNotFoundError:
        return []
    return [ln for ln in text.decode('utf-8', 'replace').splitlines()
            if re.search(pattern, ln) and 'Raw backtrace:' not in ln]


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def dovecot_error_count(dc):
    return len(dovecot_bad_lines(dc, r'\bError:'))


def stat_at(samples, t, key):
    """The last sampled value of key at or before t."""
    v = None
    for ts, s in samples:
        if ts > t:
            break
        v = s.get(key, v)
    return v


def results_out(kind, rows):
    path = os.environ.get('OBOXFS_RELIABILITY_RESULTS')
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps({'kind': kind, 'long': LONG,
                                'rows': rows}) + '\n')


def table(rows, cols):
    """rows: list of dicts; cols: [(key, title)]."""
    w = {k: max(len(t), *(len(str(r.get(k, ''))) for r in rows))
         for k, t in cols}
    out = ['  '.join(t.rjust(w[k]) for k, t in cols)]
    for r in rows:
        out.append('  '.join(str(r.get(k, '')).rjust(w[k]) for k, _ in cols))
    return '\n'.join(out)


FAULT_COLS = [('kind', 'fault'), ('attempted', 'attempted'), ('ack', 'acked'),
              ('present', 'present'), ('temp', '4xx'), ('perm', '5xx'),
              ('conn', 'conn-err'), ('ridden_out', 'ridden-out'),
              ('lmtp_max_s', 'max-LMTP-s'), ('fs_max_s', 'max-FS-s'),
              ('fs_max_op', 'max-FS-op'), ('reader_errors', 'IMAP-err'),
              ('reader_max_s', 'max-IMAP-s'),
              ('first_ack_s', 'first-ack-s'), ('recover_s', 'recover-s'),
              ('upload_failures', 'upl-fail')]
KILL_COLS = [('kills', 'kills'), ('fresh', 'fresh-cache'),
             ('attempted', 'attempted'), ('ack', 'acked'),
             ('present', 'present'), ('temp', '4xx'), ('perm', '5xx'),
             ('conn', 'conn-err'), ('corrupt', 'corrupt-log'),
             ('fatal_after_kill', 'fatal-after-kill'), ('seed', 'seed')]
