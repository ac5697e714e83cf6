"""benchlib.py: what the bench scripts share: the test helpers' path, a
local Swift S3 (tests/fixtures/swift-start.sh), the work directory and
environment of a run, and the main() wrapper.  Not a script."""
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the source tree clean

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'tests', 'integration'))
os.environ.setdefault('OBOXFS_SOURCE_DIR', TOP)
import mailtest  # noqa: E402
from mailtest import TestFailure, add_cleanup, fail, remove_cleanup  # noqa: E402

BUCKET = 'oboxfs-bench'


class Swift:
    """A local Swift S3 from tests/fixtures/swift-start.sh (mode c)."""

    def __init__(self, datadir, port):
        self.datadir, self.port = datadir, port
        self.entry = None

    def start(self):
        script = os.path.join(TOP, 'tests', 'fixtures', 'swift-start.sh')
        if not os.access(script, os.X_OK):
            fail(f'{script} is missing: cannot run mode c')
        self.entry = add_cleanup('swift', self.stop)
        r = subprocess.run([script, self.datadir, str(self.port), BUCKET],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f'swift-start.sh failed:\n{r.stdout}{r.stderr}')
        os.environ.update({
            'OBOXFS_TEST_S3_ENDPOINT': f'http://127.0.0.1:{self.port}',
            'OBOXFS_TEST_S3_REGION': 'us-east-1',
            'OBOXFS_TEST_S3_ACCESS_KEY': 'test:tester',
            'OBOXFS_TEST_S3_SECRET_KEY': 'testing',
            'OBOXFS_TEST_S3_BUCKET': BUCKET})

    def stop(self):
        if self.entry is None:
            return
        subprocess.run([os.path.join(TOP, 'tests', 'fixtures', 'swift-stop.sh'),
                        self.datadir], capture_output=True)
        remove_cleanup(self.entry)
        self.entry = None


def add_common_args(ap):
    """--build-dir and --dir, the same in every bench script."""
    ap.add_argument('--build-dir', default=os.environ.get(
        'OBOXFS_BUILD_DIR', os.path.join(TOP, 'build')),
        help='build tree with fs/oboxfs (default: $OBOXFS_BUILD_DIR or ./build)')
    ap.add_argument('--dir', help='work directory (default: a new one in /tmp, '
                    'removed afterwards)')


def login_fetch_flags(dc, user, want):
    """LOGIN + SELECT INBOX + UID FETCH 1:* (FLAGS) + LOGOUT of user, who
    must have want mails; seconds."""
    t0 = time.monotonic()
    with mailtest.Imap(dc.imap_port, user) as c:
        n = c.select('INBOX', readonly=True)
        flags = c.fetch_flags('1:*')
    elapsed = time.monotonic() - t0
    if n != want or len(flags) != want:
        fail(f'{user}: SELECT said {n} mails, FETCH returned {len(flags)} '
             f'flags; {want} were delivered')
    return elapsed


def proc_rss(pid):
    """a process's resident memory, bytes (0 if unknown)"""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0


def delta(before, after, key):
    """The growth of a stats counter."""
    return after.get(key, 0) - before.get(key, 0)


def setup_workdir(args, prefix, users):
    """The run's work directory (--dir, or a new one in /tmp) and the
    environment the test helpers read; returns its path."""
    workdir = os.path.abspath(args.dir or tempfile.mkdtemp(prefix=prefix))
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)  # the mail user must reach the mail dirs
    os.environ.update({'OBOXFS_BUILD_DIR': os.path.abspath(args.build_dir),
                       'OBOXFS_TEST_DIR': workdir,
                       'OBOXFS_TEST_DOVECOT_PORT': str(args.port),
                       'OBOXFS_DOVECOT_USERS': str(max(users, 1))})
    return workdir


def cleanup(args, workdir, swift=None):
    """Stop Swift and everything the helpers started; remove a workdir
    the run made itself."""
    if swift:
        swift.stop()
    mailtest.run_cleanups()
    if not args.dir:
        subprocess.run(['rm', '-rf', '--one-file-system', workdir])


def run(name, main):
    """sys.exit(main()), a TestFailure as one line on stderr and exit 1."""
    try:
        sys.exit(main())
    except TestFailure as e:
        print(f'{name}: {e}', file=sys.stderr)
        sys.exit(1)
