#!/usr/bin/python3
"""test_fs_request_times.py: the daemon counts the FUSE requests it serves
and how long each took (fs/reqtime.c), in MOUNTPOINT/.oboxfs-stats:
fuse_requests, fuse_request_max_usecs and fuse_OP_requests / _usecs /
_max_usecs per operation.

A file:// store behind the fault= layer adds DELAY_MS to every PUT: the
fsync of a mail in a maildir tmp/ stores it (one PUT), so that fsync must
be counted and take at least DELAY_MS in the daemon, and be the longest
request; a rename in cur/ (no store request) must be counted and be far
shorter.  Reading the statistics file is itself an open: each read counts
one more.

A request is counted as it arrives, so the counts are exact as soon as the
system calls have returned; its time is added a moment after its reply, so
the time checks read the statistics again until the delayed fsyncs' time
is in (at most TIME_WAIT_S)."""
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import main_wrapper  # noqa: E402
from mailtest import OboxfsMount, TestEnv, fail, log  # noqa: E402

DELAY_MS = 400
MAILS = 3
TIME_WAIT_S = 10


def run(env):
    env.fresh_dir()
    store = f'file://{env.path("store")}'
    os.makedirs(env.path('store'))
    opts = [f'fault=ops=put;rate=0;latency_ms={DELAY_MS}']
    with OboxfsMount(env, store, env.path('mnt'), env.path('cache'),
                     options=opts) as m:
        s0 = m.stats()
        s1 = m.stats()
        for k in ('fuse_requests', 'fuse_request_max_usecs',
                  'fuse_open_requests', 'fuse_lookup_requests'):
            if k not in s1:
                fail(f'{k} is missing from the statistics: {sorted(s1)}')
        # each read's open is counted as it arrives
        if s1['fuse_open_requests'] != s0.get('fuse_open_requests', 0) + 1:
            fail(f'reading the stats counted {s1["fuse_open_requests"]} '
                 f'opens after {s0.get("fuse_open_requests", 0)}, not one more')
        if s1['fuse_requests'] <= s0['fuse_requests']:
            fail('fuse_requests did not grow across a read of the stats')

        folder = os.path.join(m.mountpoint, 'user1@example.com', 'Maildir')
        for sub in ('tmp', 'new', 'cur'):
            os.makedirs(os.path.join(folder, sub))
        for i in range(MAILS):
            tmp = os.path.join(folder, 'tmp', f'mail{i}')
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b'Subject: t\r\n\r\nbody %d\r\n' % i)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, os.path.join(folder, 'new', f'mail{i}'))
            os.rename(os.path.join(folder, 'new', f'mail{i}'),
                      os.path.join(folder, 'cur', f'mail{i}:2,S'))
        s2 = m.stats()
        log('fuse lines: ' + ', '.join(f'{k} {v}' for k, v in sorted(
            s2.items()) if k.startswith('fuse_')))

        puts = s2['requests_put'] - s1['requests_put']
        if puts < MAILS:
            fail(f'{puts} PUTs for {MAILS} mails: the test stored nothing')
        fsyncs = s2.get('fuse_fsync_requests', 0) - \
            s1.get('fuse_fsync_requests', 0)
        if fsyncs < MAILS:
            fail(f'{fsyncs} fsync requests counted for {MAILS} fsyncs')
        renames = s2.get('fuse_rename_requests', 0) - \
            s1.get('fuse_rename_requests', 0)
        if renames != 2 * MAILS:
            fail(f'{renames} rename requests counted for {2 * MAILS}')
        # the times trail the counts by a moment: wait for the fsyncs'
        deadline = time.monotonic() + TIME_WAIT_S
        while s2['fuse_fsync_usecs'] < fsyncs * DELAY_MS * 1000 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
            s2 = m.stats()
        fsync_max = s2['fuse_fsync_max_usecs']
        if fsync_max < DELAY_MS * 1000:
            fail(f'the longest fsync took {fsync_max} us in the daemon, '
                 f'less than the {DELAY_MS} ms its PUT was delayed')
        if fsync_max > 30 * 1000000:
            fail(f'the longest fsync took {fsync_max} us: not its PUT')
        if s2['fuse_request_max_usecs'] < fsync_max:
            fail(f'fuse_request_max_usecs {s2["fuse_request_max_usecs"]} '
                 f'is less than the longest fsync {fsync_max}')
        if s2['fuse_fsync_usecs'] < fsyncs * DELAY_MS * 1000:
            fail(f'fuse_fsync_usecs {s2["fuse_fsync_usecs"]} is less than '
                 f'{fsyncs} delayed PUTs')
        if s2['fuse_rename_max_usecs'] >= DELAY_MS * 1000:
            fail(f'a rename took {s2["fuse_rename_max_usecs"]} us: renames '
                 f'of mails stored at their fsync make no store request')


if __name__ == '__main__':
    main_wrapper('test_fs_request_times', lambda name: run(TestEnv(name)))
