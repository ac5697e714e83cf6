#!/usr/bin/python3
"""test_fs_concurrency.py: many processes at once on one oboxfs mount, with
uploads every second: the daemon's FUSE workers, upload workers, metacache
eviction and split-brain checks all run concurrently.  Written for the
ThreadSanitizer build (scripts/run-tsan), where it is what finds races
between FUSE requests and the uploader; under ASan it is a plain stress.

A file:// store mounted with upload_interval=1, upload_deliveries=1,
split_check_interval=1, metacache_size=1M, metacache_idle=15,
cache_size=1M.  10 processes for 30 s, on 4 users with 3 folders each:
maildir deliveries (write in tmp/, a third of them fsynced there as
Dovecot does, rename into new/), index rewrites
(write + fsync + rename onto dovecot.index), link() dot-locks, moves
new/ -> cur/ with a read, expunges, tree walks with stat, statfs and the
stats file; SIGUSR1 (upload now) every 0.5 s.  Each process moves and
expunges only its own mails and keeps their bytes; after an unmount and a
remount with the same cache every mail kept is there with its bytes.  The
daemon must exit cleanly (a TSan report makes it exit with status 66)."""
import hashlib
import multiprocessing as mp
import os
import random
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import main_wrapper  # noqa: E402
from mailtest import OboxfsMount, TestEnv, fail, log  # noqa: E402

NPROC = 10
SECONDS = 30
NUSERS = 4
OPTIONS = ['upload_interval=1', 'upload_deliveries=1',
           'split_check_interval=1', 'metacache_size=1M',
           'metacache_idle=15', 'cache_size=1M', 'no_fsync',
           'delete_grace=0']


def worker(args):
    mnt, i = args
    rnd = random.Random(i)
    end = time.monotonic() + SECONDS
    mine = {}  # path -> sha256 of the mails this process kept
    errors = []
    n = 0
    while time.monotonic() < end:
        user = f'user{rnd.randrange(NUSERS)}@example.com'
        base = f'{mnt}/{user}/Maildir'
        folder = base if rnd.random() < 0.5 else f'{base}/.F{rnd.randrange(3)}'
        n += 1
        try:
            for d in ('tmp', 'new', 'cur'):
                os.makedirs(f'{folder}/{d}', exist_ok=True)
            op = rnd.randrange(8)
            if op <= 2:
                name = f'{int(time.time())}.P{os.getpid()}Q{n}.host'
                body = (b'From: a@example.com\r\nSubject: x\r\n\r\n' +
                        os.urandom(rnd.randrange(10, 5000)))
                with open(f'{folder}/tmp/{name}', 'wb') as f:
                    f.write(body)
                    if op == 0:
                        # as Dovecot: stored by the fsync in tmp/
                        # (store_on_fsync), the rename is a local one
                        f.flush()
                        os.fsync(f.fileno())
                os.rename(f'{folder}/tmp/{name}', f'{folder}/new/{name}')
                mine[f'{folder}/new/{name}'] = hashlib.sha256(body).hexdigest()
            elif op == 3:
                tmp = f'{folder}/dovecot.index.tmp{i}'
                with open(tmp, 'wb') as f:
                    f.write(os.urandom(rnd.randrange(100, 20000)))
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(tmp, f'{folder}/dovecot.index')
            elif op == 4:
                p = f'{folder}/lock.{i}'
                with open(p, 'w') as f:
                    f.write(str(i))
                try:
                    os.link(p, f'{folder}/dovecot-uidlist.lock')
                    os.unlink(f'{folder}/dovecot-uidlist.lock')
                except FileExistsError:
                    pass
                os.unlink(p)
            elif op == 5:
                for p in [p for p in mine if f'{folder}/new/' in p][:3]:
                    q = p.replace('/new/', '/cur/') + ':2,S'
                    os.rename(p, q)
                    mine[q] = mine.pop(p)
                    with open(q, 'rb') as f:
                        if hashlib.sha256(f.read()).hexdigest() != mine[q]:
                            errors.append(f'{q}: bytes differ')
            elif op == 6:
                own = [p for p in mine if f'{folder}/' in p]
                for p in rnd.sample(own, min(2, len(own))):
                    os.unlink(p)
                    del mine[p]
            else:
                for root, _, files in os.walk(f'{mnt}/{user}'):
                    for fn in files[:10]:
                        try:
                            os.stat(os.path.join(root, fn))
                        except FileNotFoundError:
                            pass  # another process's lock or expunge
                os.statvfs(mnt)
                with open(f'{mnt}/.oboxfs-stats') as f:
                    f.read()
        except OSError as e:
            errors.append(f'process {i}: {e}')
    return n, mine, errors


def check_mails(mails):
    bad = []
    for p, sha in mails.items():
        try:
            with open(p, 'rb') as f:
                if hashlib.sha256(f.read()).hexdigest() != sha:
                    bad.append(f'{p}: bytes differ')
        except OSError as e:
            bad.append(f'{p}: {e}')
    if bad:
        fail(f'{len(bad)} of {len(mails)} mails wrong: ' + '; '.join(bad[:5]))


def run(name):
    env = TestEnv(name)
    env.fresh_dir()
    url = 'file://' + env.path('store')
    os.makedirs(env.path('store'))
    mnt_path = env.path('mnt')
    mnt = OboxfsMount(env, url, mnt_path, env.path('cache'), OPTIONS)
    with mnt:
        stop = threading.Event()

        def kick():
            while not stop.wait(0.5):
                if mnt.proc is not None:
                    mnt.proc.send_signal(signal.SIGUSR1)
        kicker = threading.Thread(target=kick)
        kicker.start()
        try:
            # closed and joined, not terminated: the workers end on
            # their own once the map is done (a worker that missed the
            # pool's SIGTERM once kept the test waiting for it forever)
            pool = mp.Pool(NPROC)
            try:
                results = pool.map(worker, [(mnt_path, i)
                                            for i in range(NPROC)])
                pool.close()
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
        finally:
            stop.set()
            kicker.join()
        ops = sum(r[0] for r in results)
        mails = {}
        errors = []
        for _, m, e in results:
            mails.update(m)
            errors += e
        log(f'{ops} operations by {NPROC} processes, {len(mails)} mails kept')
        if errors:
            fail(f'{len(errors)} operations failed: ' + '; '.join(errors[:5]))
        check_mails(mails)
        mnt.stop()
        mnt.check()
        mnt.start()
        check_mails(mails)
        log('all mails there after a remount')


if __name__ == '__main__':
    main_wrapper('test_fs_concurrency', run)
