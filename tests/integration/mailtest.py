#!/usr/bin/python3
"""mailtest.py: library (and small CLI) for the Dovecot-on-oboxfs tests and
the benchmark.  Python standard library only.

- cleanup registry run on normal exit, on exceptions and on SIGTERM/SIGINT/
  SIGHUP, so Dovecot is stopped and the FUSE mount unmounted whatever happens
- OboxfsMount: mounts oboxfs in the foreground as a child process (or, with
  OBOXFS_TEST_PLAIN=1, just uses a plain directory: for debugging the harness)
- Dovecot: tests/fixtures/dovecot-start.sh / dovecot-stop.sh + log checks
- Store: lists a file:// or s3:// store with object metadata and bytes
- mail generation, LMTP delivery, IMAP and POP3 clients: mailclients.py
  (re-exported here)

CLI (for poking at things by hand):
  mailtest.py store-ls URL            list a file:// store (or s3:// with
                                      OBOXFS_TEST_S3_* set) with metadata
  mailtest.py serve FORMAT [--plain]  mount + Dovecot, wait for Ctrl-C
"""
import argparse
import atexit
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get('OBOXFS_SOURCE_DIR') or os.path.dirname(
    os.path.dirname(HERE))
FIXTURES = os.path.join(SOURCE_DIR, 'tests', 'fixtures')
MAIL_USER = os.environ.get('OBOXFS_DOVECOT_MAIL_USER', 'vmail')

sys.path.insert(0, HERE)
import s3mini  # noqa: E402
from mailclients import *  # noqa: E402,F401,F403 - re-exported
from mailclients import (Imap, Lmtp, TestFailure, fail, log,  # noqa: E402
                         run_threads)


# ---------------------------------------------------------------- cleanup

_cleanup_lock = threading.RLock()
_cleanups = []


def add_cleanup(name, fn):
    entry = (name, fn)
    with _cleanup_lock:
        _cleanups.append(entry)
    return entry


def remove_cleanup(entry):
    with _cleanup_lock:
        if entry in _cleanups:
            _cleanups.remove(entry)


# the process that registers cleanups runs them: a forked worker (a
# multiprocessing pool's, ended with SIGTERM) must not unmount its parent's
# mounts
_cleanup_pid = os.getpid()


def run_cleanups():
    """Run every registered cleanup, newest first; never raises.  Only in
    the process the cleanups belong to."""
    if os.getpid() != _cleanup_pid:
        return
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            name, fn = _cleanups.pop()
        try:
            fn()
        except BaseException as e:  # noqa: B902 - keep cleaning up
            log(f'cleanup "{name}" failed: {e!r}')


def _on_signal(signum, _frame):
    if os.getpid() != _cleanup_pid:
        os._exit(128 + signum)  # a forked worker: its parent cleans up
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    log(f'signal {signum}: cleaning up')
    run_cleanups()
    os._exit(128 + signum)


atexit.register(run_cleanups)
if threading.current_thread() is threading.main_thread():
    for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(_s, _on_signal)


# ---------------------------------------------------------------- environment

def env_required(name):
    value = os.environ.get(name)
    if not value:
        fail(f'{name} is not set (run the test through ctest, or export it)')
    return value


def mail_user_ids():
    """(uid, gid) of the mail user; dovecot-start.sh creates it if missing."""
    try:
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run([_which('useradd') or 'useradd', '--system',
                        '--user-group', '--no-create-home', '--home-dir',
                        '/nonexistent', '--shell', '/usr/sbin/nologin',
                        MAIL_USER], check=True)
        pw = pwd.getpwnam(MAIL_USER)
    return pw.pw_uid, pw.pw_gid


class S3Config:
    """The test S3 server from OBOXFS_TEST_S3_* (set by ctest for *_on_s3)."""
    VARS = ('ENDPOINT', 'REGION', 'ACCESS_KEY', 'SECRET_KEY', 'BUCKET')

    def __init__(self):
        missing = [f'OBOXFS_TEST_S3_{v}' for v in self.VARS
                   if not os.environ.get(f'OBOXFS_TEST_S3_{v}')]
        if missing:
            fail('no S3 server configured: ' + ', '.join(missing) +
                 ' not set (ctest sets them for tests named *_on_s3)')
        g = lambda v: os.environ[f'OBOXFS_TEST_S3_{v}']  # noqa: E731
        self.endpoint, self.region = g('ENDPOINT'), g('REGION')
        self.access_key, self.secret_key = g('ACCESS_KEY'), g('SECRET_KEY')
        self.bucket = g('BUCKET')

    def write_credentials(self, path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(f'access_key = {self.access_key}\n'
                    f'secret_key = {self.secret_key}\n')
        os.chmod(path, 0o600)
        return path

    def client(self):
        return s3mini.S3Client(self.endpoint, self.region, self.access_key,
                               self.secret_key, self.bucket)


class TestEnv:
    """Paths and ports of one test: everything lives in OBOXFS_TEST_DIR/NAME.
    port_offset keeps tests that ctest runs in parallel apart."""

    def __init__(self, name, port_offset=0):
        self.name = name
        self.build_dir = env_required('OBOXFS_BUILD_DIR')
        self.dir = os.path.join(env_required('OBOXFS_TEST_DIR'), name)
        self.port = int(env_required('OBOXFS_TEST_DOVECOT_PORT')) + port_offset
        self.plain = os.environ.get('OBOXFS_TEST_PLAIN') == '1'
        self.oboxfs = os.path.join(self.build_dir, 'fs', 'oboxfs')

    def fresh_dir(self):
        """Empty the test's directory (stopping the Dovecot and unmounting
        the mounts a killed run may have left)."""
        if os.path.isdir(self.dir):
            for root, dirs, files in os.walk(self.dir):
                if 'dovecot.conf' in files and 'users' in files:
                    subprocess.run([os.path.join(FIXTURES, 'dovecot-stop.sh'),
                                    root], stdout=subprocess.DEVNULL)
                dirs[:] = [d for d in dirs if not os.path.ismount(
                    os.path.join(root, d))]
            for root, dirs, _ in os.walk(self.dir):
                for d in dirs:
                    p = os.path.join(root, d)
                    if os.path.ismount(p) or _is_dead_mount(p):
                        log(f'unmounting leftover mount {p}')
                        subprocess.run(['fusermount3', '-u', '-z', p])
            subprocess.run(['rm', '-rf', '--one-file-system', self.dir],
                           check=True)
        os.makedirs(self.dir)
        return self.dir

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


def check_prerequisites(need_fuse=True):
    problems = []
    if need_fuse:
        if not os.path.exists('/dev/fuse'):
            problems.append('/dev/fuse is missing (load the fuse module, or '
                            'give the container --device /dev/fuse)')
        elif not os.access('/dev/fuse', os.R_OK | os.W_OK):
            problems.append('/dev/fuse is not read/writable')
        if not _which('fusermount3'):
            problems.append('fusermount3 is missing (apt-get install fuse3)')
    for tool in ('dovecot', 'doveconf'):
        if not _which(tool):
            problems.append(f'{tool} is missing (apt-get install dovecot-core '
                            'dovecot-imapd dovecot-pop3d dovecot-lmtpd)')
    if problems:
        fail('; '.join(problems))


def _which(cmd):
    for d in os.environ.get('PATH', '').split(':') + ['/usr/sbin', '/sbin']:
        if d and os.access(os.path.join(d, cmd), os.X_OK):
            return os.path.join(d, cmd)
    return None


FUSECTL = '/sys/fs/fuse/connections'


def fuse_abort(dev):
    """Abort the FUSE connection of the mount whose st_dev is dev (as root):
    a daemon that died with a thread waiting for its own request cannot
    exit until then, and the mount hangs (mount.oboxfs(8)).  Mounts fusectl
    if it is not.  Returns True if the abort file was written."""
    if not os.path.isdir(FUSECTL):
        return False
    if not os.listdir(FUSECTL):
        subprocess.run(['mount', '-t', 'fusectl', 'fusectl', FUSECTL],
                       capture_output=True)
    try:
        with open(os.path.join(FUSECTL, str(dev), 'abort'), 'w') as f:
            f.write('1')
    except OSError:
        return False
    return True


def _is_dead_mount(path):
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == 107  # ENOTCONN: daemon gone, mount left
    return False


def _tail(path, n=30):
    try:
        with open(path, 'rb') as f:
            lines = f.read().decode('utf-8', 'replace').splitlines()
        return '\n'.join('    ' + line for line in lines[-n:])
    except OSError as e:
        return f'    (cannot read {path}: {e})'


# ---------------------------------------------------------------- oboxfs mount

def nofile_wrapper(nofile):
    """A command prefix that runs the daemon with an open-files limit of
    nofile (soft and hard) it cannot raise (no CAP_SYS_RESOURCE)."""
    for tool in ('setpriv', 'prlimit'):
        if _which(tool) is None:
            fail(f'{tool} (util-linux) is missing')
    return ['setpriv', '--inh-caps=-sys_resource',
            '--bounding-set=-sys_resource',
            'prlimit', f'--nofile={nofile}:{nofile}', '--']


class FdSampler:
    """A process's open descriptors, sampled every 50 ms: .peak."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.05):
            try:
                n = len(os.listdir(f'/proc/{self.pid}/fd'))
            except OSError:
                return
            self.peak = max(self.peak, n)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        return False


class OboxfsMount:
    """oboxfs -f STORE MOUNTPOINT as a child process.  As a context manager it
    always unmounts (fusermount3 -u, lazily if still busy) and ends the
    daemon (it gets time to flush its uploads, then SIGTERM, then SIGKILL).
    Plain mode (env.plain): MOUNTPOINT is a plain directory, no daemon."""

    def __init__(self, env, store_url, mountpoint, cache_dir, options=(),
                 log_path=None, wrapper=()):
        self.env = env
        # a command the daemon runs under (e.g. prlimit ... --)
        self.wrapper = list(wrapper)
        self.store_url = store_url
        self.mountpoint = mountpoint
        self.cache_dir = cache_dir
        self.options = list(options)
        # the tests check that an expunged mail's object is deleted by
        # the next flush: no grace period (objgc.h) unless a test sets one
        if not any(o.startswith('delete_grace=') for o in self.options):
            self.options.append('delete_grace=0')
        self.log_path = log_path or mountpoint.rstrip('/') + '.oboxfs.log'
        self.proc = None
        self._entry = None
        self.problems = []
        self.fuse_dev = None  # st_dev of the mount (fuse_abort())
        self.starts = 0

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is None:
            self.check()
        else:
            try:
                self.check()
            except TestFailure as e:  # shown, but the first error wins
                log(f'also: {e}')
        return False

    def start(self):
        uid, gid = mail_user_ids()
        os.makedirs(self.mountpoint, exist_ok=True)
        self.starts += 1
        if self.env.plain:
            os.chown(self.mountpoint, uid, gid)
            return
        check_prerequisites()
        if not os.access(self.env.oboxfs, os.X_OK):
            fail(f'{self.env.oboxfs} does not exist (build the project first)')
        os.makedirs(self.cache_dir, exist_ok=True)
        opts = ['allow_other', f'cache_dir={self.cache_dir}'] + self.options
        cmd = self.wrapper + [self.env.oboxfs, '-f', '-o', ','.join(opts),
                              self.store_url, self.mountpoint]
        with open(self.log_path, 'ab') as logf:
            logf.write(f'==== {time.ctime()}: {" ".join(cmd)}\n'.encode())
            logf.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._entry = add_cleanup(f'unmount {self.mountpoint}', self.stop)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mountpoint):
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                fail(f'oboxfs exited with status {rc} before mounting '
                     f'{self.mountpoint}; its log:\n{_tail(self.log_path)}')
            if time.monotonic() > deadline:
                self.stop()
                fail(f'oboxfs did not mount {self.mountpoint} within 30 s; '
                     f'its log:\n{_tail(self.log_path)}')
            time.sleep(0.05)
        try:
            os.chown(self.mountpoint, uid, gid)
            self.fuse_dev = os.stat(self.mountpoint).st_dev
        except OSError as e:
            fail(f'chown({self.mountpoint}) to {MAIL_USER} failed: {e}')
        log(f'mounted {self.store_url} on {self.mountpoint} '
            f'(pid {self.proc.pid}, log {self.log_path})')

    def stop(self):
        """Unmount and end the daemon; never raises.  Problems are kept in
        self.problems (see check())."""
        if self.proc is None:
            return
        mp = self.mountpoint
        if os.path.ismount(mp) or _is_dead_mount(mp):
            ok = False
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                r = subprocess.run(['fusermount3', '-u', mp],
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    ok = True
                    break
                err = r.stderr.strip()
                time.sleep(0.2)
            if not ok:
                self.problems.append(f'fusermount3 -u {mp} kept failing '
                                     f'({err}); unmounted lazily')
                subprocess.run(['fusermount3', '-u', '-z', mp])
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.problems.append('oboxfs did not exit within 120 s of the '
                                 'unmount; sent SIGTERM')
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.problems.append('oboxfs ignored SIGTERM; sent SIGKILL')
                self.proc.kill()
                rc = self.proc.wait()
        if rc != 0:
            self.problems.append(f'oboxfs exited with status {rc}')
        self.proc = None
        remove_cleanup(self._entry)
        self._entry = None
        log(f'unmounted {mp} (oboxfs exit status {rc})')

    def sigkill(self):
        """SIGKILL the daemon and reap it (a crash).  A daemon killed while
        one of its threads waits for a request of its own cannot exit until
        its FUSE connection is aborted (as an operator would: mount.oboxfs
        (8)): done after 10 s, and reported as a problem (check())."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.kill()
        try:
            self.proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
        aborted = self.fuse_dev is not None and fuse_abort(self.fuse_dev)
        self.problems.append('the SIGKILLed daemon did not exit within '
                             '10 s: a thread of it waited for a request of '
                             'its own; FUSE connection aborted: '
                             f'{aborted}')
        log(self.problems[-1])
        self.proc.wait(timeout=60)

    def kill(self):
        """Simulate a crash: SIGKILL the daemon, then clear its dead mount."""
        if self.proc is None:
            return
        self.sigkill()
        subprocess.run(['fusermount3', '-u', self.mountpoint])
        if _is_dead_mount(self.mountpoint) or os.path.ismount(self.mountpoint):
            subprocess.run(['fusermount3', '-u', '-z', self.mountpoint])
        self.proc = None
        remove_cleanup(self._entry)
        self._entry = None
        log(f'killed oboxfs (SIGKILL) and cleared {self.mountpoint}')

    def daemon_log_problems(self):
        """Sanitizer reports and error lines in the daemon's log."""
        if self.env.plain or not os.path.exists(self.log_path):
            return [], []
        with open(self.log_path, 'rb') as f:
            lines = f.read().decode('utf-8', 'replace').splitlines()
        fatal = [ln for ln in lines if re.search(
            r'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:|'
            r'Segmentation|'
            r'[Pp]anic|[Aa]ssert', ln)]
        errors = [ln for ln in lines if re.search(r'(?i)error|fail', ln)]
        return fatal, errors

    def check(self):
        fatal, errors = self.daemon_log_problems()
        if errors:
            log('oboxfs log has error lines:\n    ' + '\n    '.join(errors[:30]))
        if self.problems or fatal:
            fail('oboxfs: ' + '; '.join(self.problems) +
                 ('\n    ' + '\n    '.join(fatal[:40]) if fatal else ''))

    def stats(self):
        """Request counters from MOUNTPOINT/.oboxfs-stats as a flat dict."""
        if self.env.plain:
            return {}
        with open(os.path.join(self.mountpoint, '.oboxfs-stats'), 'rb') as f:
            return parse_stats(f.read().decode('utf-8', 'replace'))

    def upload_now(self, timeout=60):
        """Ask the daemon for an index upload of every user (SIGUSR1) and
        wait until it is done: index_upload_passes has grown, no user is
        dirty and nothing is queued or condemned.  Returns the stats."""
        if self.env.plain:
            return {}
        passes = self.stats()['index_upload_passes']
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        signalled = passes
        while True:
            s = self.stats()
            if s['index_upload_passes'] > passes and \
                    s['index_dirty_users'] == 0 and \
                    s['index_uploads_queued'] == 0 and \
                    s['objects_condemned'] == 0:
                return s
            if s['index_upload_passes'] > signalled and \
                    s['index_dirty_users'] > 0:
                # a change came after the pass's snapshot (Dovecot
                # writing its index after its reply): another pass
                signalled = s['index_upload_passes']
                self.proc.send_signal(signal.SIGUSR1)
            if time.monotonic() > deadline:
                fail(f'SIGUSR1: the index upload did not finish within '
                     f'{timeout} s: {_upload_stats(s)}; passes before '
                     f'{passes}')
            time.sleep(0.05)

    def wait_uploads_idle(self, timeout=60):
        """Wait until no folder upload is queued (index_uploads_queued 0 and
        the request counters still for 0.3 s).  Returns the stats."""
        if self.env.plain:
            return {}
        deadline = time.monotonic() + timeout
        last = None
        while True:
            s = self.stats()
            if s['index_uploads_queued'] == 0:
                if last is not None and \
                        request_counts(last, s) == {}:
                    return s
                last = s
            else:
                last = None
            if time.monotonic() > deadline:
                fail(f'folder uploads still queued after {timeout} s: '
                     f'{_upload_stats(s)}')
            time.sleep(0.3)


def _upload_stats(s):
    return ', '.join(f'{k} {v}' for k, v in sorted(s.items())
                     if k.startswith(('index_', 'objects_')))


def request_counts(before, after):
    """{requests_OP: delta} of the nonzero deltas between two stats."""
    return {k: after[k] - before.get(k, 0) for k in after
            if k.startswith('requests_') and after[k] != before.get(k, 0)}


def parse_stats(text):
    """JSON (nested objects flattened with '.') or 'name value' /
    'name: value' / 'name=value' lines; only numeric values are kept."""
    out = {}

    def flatten(prefix, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                flatten(f'{prefix}{k}.', v)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out[prefix.rstrip('.')] = obj
    try:
        flatten('', json.loads(text))
        return out
    except ValueError:
        pass
    for line in text.splitlines():
        m = re.match(r'^\s*([\w.\-/]+)\s*[:=]?\s*(-?\d+(?:\.\d+)?)\s*$', line)
        if m:
            v = m.group(2)
            out[m.group(1)] = float(v) if '.' in v else int(v)
    return out


def store_requests(stats):
    """Total object-store requests in a stats dict (keys naming requests or
    PUT/GET/HEAD/LIST/DELETE/COPY counts)."""
    total = 0
    for k, v in stats.items():
        kl = k.lower()
        if 'byte' in kl or 'retr' in kl or 'error' in kl:
            continue
        if re.search(r'(^|[._])(put|get|head|list|delete|copy)s?($|[._])', kl):
            total += v
    if total == 0:
        total = sum(v for k, v in stats.items()
                    if re.search(r'requests?($|[._]total)', k.lower()))
    return total


def deliver_until_failure(port, mails, senders=4, on_ack=None):
    """Deliver mails over LMTP from `senders` threads like deliver_parallel,
    but a failing delivery only ends its sender (for crash tests): returns
    (acknowledged, unacknowledged) lists of mails, the second with the
    failed ones and those their senders never tried.  on_ack(mail, n_acked)
    is called after each acknowledged delivery."""
    chunks = [mails[i::senders] for i in range(senders)]
    acked, unacked = [], []
    lock = threading.Lock()

    def work(chunk):
        c = None
        for i, m in enumerate(chunk):
            try:
                if c is None:
                    c = Lmtp(port)
                c.deliver(m)
            except (TestFailure, OSError) as e:
                with lock:
                    unacked.extend(chunk[i:])
                log(f'LMTP sender stopped at {m.msgid}: {e}')
                break
            with lock:
                acked.append(m)
                n = len(acked)
            if on_ack:
                on_ack(m, n)
        if c is not None:
            try:
                c.close()
            except OSError:
                pass
    run_threads(work, chunks)
    return acked, unacked


# ---------------------------------------------------------------- dovecot

class Dovecot:
    """A private Dovecot from tests/fixtures/dovecot-start.sh."""

    def __init__(self, env, mailroot, fmt, rundir=None, extra_conf=''):
        self.env = env
        self.mailroot = mailroot
        self.fmt = fmt
        self.rundir = rundir or env.path('dovecot')
        # OBOXFS_TEST_DOVECOT_CONF: extra dovecot.conf lines (debugging)
        self.extra_conf = '\n'.join(x for x in (
            extra_conf, os.environ.get('OBOXFS_TEST_DOVECOT_CONF', '')) if x)
        self.port = env.port
        self.imap_port, self.pop3_port, self.lmtp_port = (
            self.port, self.port + 1, self.port + 2)
        self.log_path = os.path.join(self.rundir, 'dovecot.log')
        self._entry = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is None:
            self.check_log()
        elif self.log_problems():
            log('also, in the dovecot log:\n    ' +
                '\n    '.join(self.log_problems()[:20]))
        return False

    def start(self):
        check_prerequisites(need_fuse=False)
        os.makedirs(self.rundir, exist_ok=True)
        cmd = [os.path.join(FIXTURES, 'dovecot-start.sh'), self.rundir,
               self.mailroot, str(self.port), self.fmt]
        if self.extra_conf:
            path = os.path.join(self.rundir, 'extra.conf')
            with open(path, 'w') as f:
                f.write(self.extra_conf + '\n')
            cmd.append(path)
        self._entry = add_cleanup(f'dovecot {self.rundir}', self.stop)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f'dovecot-start.sh failed ({r.returncode}):\n{r.stdout}{r.stderr}')
        log(r.stdout.strip())

    def stop(self):
        if self._entry is None:
            return
        r = subprocess.run([os.path.join(FIXTURES, 'dovecot-stop.sh'),
                            self.rundir], capture_output=True, text=True)
        if r.returncode != 0:
            log(f'dovecot-stop.sh: {r.stdout}{r.stderr}')
        remove_cleanup(self._entry)
        self._entry = None

    def log_problems(self):
        try:
            with open(self.log_path, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return []
        return [ln for ln in text.splitlines()
                if re.search(r'\b(Error|Panic|Fatal):', ln)]

    def check_log(self):
        bad = self.log_problems()
        if bad:
            fail(f'dovecot log {self.log_path} has {len(bad)} error lines:\n    '
                 + '\n    '.join(bad[:40]))

    def imap(self, user):
        return Imap(self.imap_port, user)


# ---------------------------------------------------------------- the store

MAIL_KEY_RE = re.compile(
    r'^([0-9a-f]{2})/([0-9a-f]{3})/([^/]+)/mailboxes/([0-9a-f]{32})/([0-9a-f]{32})$')
# the mount root's owner and mode (engine/keys.h KEYS_ROOT_ATTR)
ROOT_ATTR_KEY = 'oboxfs/root-attr'
BUNDLE_KEY_RE = re.compile(
    r'^[0-9a-f]{2}/[0-9a-f]{3}/[^/]+/(mailboxes/[0-9a-f]{32}/)?idx/'
    r'bundle\.[0-9a-f]{8}\.[0-9a-f]{5}\.[0-9a-f]{32}(-[0-9a-f]{32})?$')


class Store:
    """Read-only view of a store: file:///DIR (objects are files, metadata in
    the user.oboxfs.meta xattr as JSON) or s3://BUCKET/PREFIX (s3mini)."""

    def __init__(self, url, s3=None):
        self.url = url
        if url.startswith('file://'):
            self.root = url[len('file://'):]
            self.s3 = None
        elif url.startswith('s3://'):
            if s3 is None:
                s3 = S3Config()
            bucket, _, prefix = url[len('s3://'):].partition('/')
            if bucket != s3.bucket:
                fail(f'{url}: bucket is not {s3.bucket}')
            self.prefix = prefix.strip('/') + '/' if prefix.strip('/') else ''
            self.s3 = s3.client()
        else:
            fail(f'unknown store URL {url}')

    def list(self):
        """[(key, size)] sorted by key."""
        if self.s3:
            n = len(self.prefix)
            return sorted((k[n:], s) for k, s in self.s3.list(self.prefix))
        out = []
        for root, dirs, files in os.walk(self.root):
            rel = os.path.relpath(root, self.root)
            if rel == '.':
                dirs[:] = [d for d in dirs if d != '.oboxfs-tmp']
                rel = ''
            for f in files:
                key = f'{rel}/{f}' if rel else f
                out.append((key, os.lstat(os.path.join(root, f)).st_size))
        return sorted(out)

    def meta(self, key):
        if self.s3:
            return self.s3.head(self.prefix + key)
        try:
            raw = os.getxattr(os.path.join(self.root, key), 'user.oboxfs.meta')
        except OSError:
            return {}
        out = {}
        for k, v in json.loads(raw).items():
            out[k] = (bytes.fromhex(v['hex']).decode('utf-8', 'replace')
                      if isinstance(v, dict) else v)
        return out

    def get(self, key):
        if self.s3:
            return self.s3.get(self.prefix + key)
        with open(os.path.join(self.root, key), 'rb') as f:
            return f.read()


# ---------------------------------------------------------------- CLI

def _cli():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('store-ls', help='list a store with object metadata')
    p.add_argument('url')
    p = sub.add_parser('serve', help='mount + dovecot until Ctrl-C')
    p.add_argument('format', choices=('maildir', 'sdbox'))
    p.add_argument('--plain', action='store_true')
    args = ap.parse_args()
    if args.cmd == 'store-ls':
        st = Store(args.url)
        for key, size in st.list():
            print(f'{size:10d} {key} {json.dumps(st.meta(key))}')
        return 0
    if args.plain:
        os.environ['OBOXFS_TEST_PLAIN'] = '1'
    env = TestEnv('serve')
    env.fresh_dir()
    with OboxfsMount(env, f'file://{env.path("store")}', env.path('mnt'),
                     env.path('cache')) as mnt, \
            Dovecot(env, mnt.mountpoint, args.format):
        log('serving; Ctrl-C to stop')
        while True:
            time.sleep(3600)


if __name__ == '__main__':
    try:
        sys.exit(_cli())
    except TestFailure as e:
        print(f'FAIL: {e}', file=sys.stderr)
        sys.exit(1)
