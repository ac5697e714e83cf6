#!/usr/bin/python3
"""test_fs_mmap_append.py: a file appended to by some processes and mapped
by others to the size fstat() gives must never SIGBUS on oboxfs (it does
not on a local filesystem).

This is what Dovecot does with dovecot.index.log (and dovecot.index.cache):
one process appends with write(), others fstat() it, mmap() it to that size
and read the new records.  The kernel extends its i_size of a FUSE file
only when the writer's WRITE reply has been processed, while a GETATTR
answered by the daemon after its pwrite() already reports the new size to
fstat() (the kernel ignores it for i_size while the write is in flight but
still returns it): a page past the kernel's i_size then faults with SIGBUS.
Dovecot's imap and lmtp processes were killed with signal 7 so under an
IMAP stress load (several sessions of one user).

Writers (niced, so that they are slow to run again after their WRITE
reply, as on a loaded server) append records; readers fstat(), map to that
size and touch the last byte.  A reader killed by SIGBUS fails the test."""
import mmap
import multiprocessing as mp
import os
import random
import signal
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import main_wrapper  # noqa: E402
from mailtest import OboxfsMount, TestEnv, fail, log  # noqa: E402

SECONDS = 20
WRITERS = 2
READERS = 3


def writer(path, end, seed):
    os.nice(19)
    rnd = random.Random(seed)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    while time.monotonic() < end:
        os.write(fd, b'r' * rnd.randrange(40, 200))
    os.close(fd)


def reader(path, end):
    """fstat(), map to that size, touch the last byte; a SIGBUS kills the
    process (exit code -SIGBUS)."""
    fd = os.open(path, os.O_RDONLY)
    mapped, checks = 0, 0
    while time.monotonic() < end:
        size = os.fstat(fd).st_size
        if size <= mapped:
            continue
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
            m[size - 1]  # noqa: B018 - the access that may fault
        mapped = size
        checks += 1
    os.close(fd)
    if checks < 10:
        sys.exit(3)  # the file hardly grew: the test tested nothing


def run(env):
    env.fresh_dir()
    store = f'file://{env.path("store")}'
    os.makedirs(env.path('store'))
    with OboxfsMount(env, store, env.path('mnt'), env.path('cache')) as m:
        user_dir = os.path.join(m.mountpoint, 'user1@example.com')
        os.mkdir(user_dir)
        path = os.path.join(user_dir, 'dovecot.index.log')
        with open(path, 'wb'):
            pass
        end = time.monotonic() + SECONDS
        procs = [mp.Process(target=writer, args=(path, end, i))
                 for i in range(WRITERS)]
        procs += [mp.Process(target=reader, args=(path, end))
                  for _ in range(READERS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        size = os.stat(path).st_size
        codes = [p.exitcode for p in procs]
        log(f'{size} bytes appended; exit codes {codes}')
        if -signal.SIGBUS in codes:
            fail(f'{codes.count(-signal.SIGBUS)} of {READERS} readers '
                 f'were killed by SIGBUS touching a mapping of the size '
                 f'fstat() gave')
        if any(c != 0 for c in codes):
            fail(f'a writer or reader failed: exit codes {codes}')


if __name__ == '__main__':
    main_wrapper('test_fs_mmap_append', lambda name: run(TestEnv(name)))
