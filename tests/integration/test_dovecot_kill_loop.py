#!/usr/bin/python3
"""test_dovecot_kill_loop.py: the daemon SIGKILLed again and again at random
moments under a mixed load never loses an acknowledged mail, and Dovecot
never finds a corrupted index (CONTRACT §5, §6).

maildir on a file:// store (OBOXFS_KILL_LOOP_STORE=s3 and an *_on_s3 style
environment: the local Swift).  Each round: mount (the cache dir of the
round before, left unclean by the SIGKILL, or every FRESH_EVERY-th round a
new empty one: a takeover by another machine), start a Dovecot of its own,
check that every mail acknowledged in any round before is in its INBOX with
its bytes (IMAP, by Message-ID), then run 8 LMTP senders + 4 IMAP readers
(faultload.MixedLoad) and SIGKILL the daemon after a random 2..8 s.  The
random moments come from a seed printed in the log (OBOXFS_KILL_SEED=N runs
the same ones).  After the last kill: a remount on the unclean cache, the
check, a clean unmount, and a takeover on a fresh cache dir with the check
again.  No Dovecot log (of any round) may mention corruption, nor a Panic or
a Fatal error before the kill; Error lines (and a process killed by SIGBUS
on an mmapped index) are expected once the mount died under Dovecot.

Short by default (CI: 5 kills, rounds 2 and 4 remount on a fresh cache dir);
OBOXFS_RELIABILITY_LONG=1 (bench/reliability-run): 20 kills, every
fifth remount on a fresh cache dir.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 57 .. + 59.
"""
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import main_wrapper, store_setup  # noqa: E402
from faultload import (KILL_COLS, LONG, MixedLoad, check_present,  # noqa: E402
                       dovecot_bad_lines, log_size, results_out, table)
from mailtest import (Dovecot, OboxfsMount, TestEnv, fail,  # noqa: E402
                      log, user_name)

FMT = 'maildir'
KILLS, FRESH_EVERY = (20, 5) if LONG else (5, 2)
KILL_AFTER_S = (2.0, 8.0)


def run(name, port_offset):
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    seed = int(os.environ.get('OBOXFS_KILL_SEED') or
               random.randrange(1 << 30))
    kind = os.environ.get('OBOXFS_KILL_LOOP_STORE', 'file')
    log(f'seed {seed} (OBOXFS_KILL_SEED={seed} repeats the kill moments); '
        f'{KILLS} kills, every {FRESH_EVERY}th remount on a fresh cache dir,'
        f' {kind} store')
    rng = random.Random(seed)
    url, opts = store_setup(env, kind)
    # uploads at their usual pace: every 10 deliveries to a folder, and a
    # pass every 5 s, so that kills land before, during and after them
    opts = opts + ['upload_interval=5']
    users = [user_name(i) for i in range(1, 5)]
    sent, deliveries, dcs = {}, [], []
    fatal_after_kill = []
    mp = env.path('mnt')
    cache = env.path('cache0')
    fresh = 0

    def mount_and_check(i, what):
        mnt = OboxfsMount(env, url, mp, cache, opts,
                          log_path=env.path(f'oboxfs-{i}.log'))
        dc = Dovecot(env, mp, FMT, rundir=env.path(f'dc{i}'))
        dcs.append(dc)
        mnt.start()
        dc.start()
        present, _, _ = check_present(f'round {i} ({what})', dc, users,
                                      deliveries, sent)
        bad = dovecot_bad_lines(dc)
        if bad:
            fail(f'round {i} ({what}): Dovecot reports corruption:\n    ' +
                 '\n    '.join(bad[:20]))
        return mnt, dc, present

    what = 'first mount'
    for i in range(1, KILLS + 1):
        mnt = dc = None
        try:
            mnt, dc, _ = mount_and_check(i, what)
            load = MixedLoad(dc, mnt, users, sent, tag=f'k{i}',
                             seed=seed, lmtp_timeout=120,
                             max_size=12 * 1024)
            load.start()
            after = rng.uniform(*KILL_AFTER_S)
            try:
                time.sleep(after)
                kill_off = log_size(dc.log_path)
                mnt.kill()
                log(f'round {i}: SIGKILLed the daemon {after:.2f} s into '
                    f'the load ({len(load.deliveries)} deliveries so far)')
            finally:
                load.stop()
            c = load.counts()
            log(f'round {i}: {c}')
            deliveries += load.deliveries
            if load.corrupt:
                fail(f'round {i}: bodies read back differ: ' +
                     '; '.join(load.corrupt[:5]))
            bad = dovecot_bad_lines(dc, end=kill_off) + dovecot_bad_lines(
                dc, r'(?i)corrupt', start=kill_off)
            if bad:
                fail(f'round {i}: Dovecot reports corruption or a Panic/'
                     'Fatal error:\n    ' + '\n    '.join(bad[:20]))
            fatal_after_kill += dovecot_bad_lines(dc, start=kill_off)
            perm = [d for d in load.deliveries if d.outcome == 'perm']
            if perm:
                fail(f'round {i}: {len(perm)} deliveries refused with a '
                     f'PERMANENT error, e.g. {perm[0].code} {perm[0].reply}')
        finally:
            if dc is not None:
                dc.stop()
            if mnt is not None:
                mnt.kill()
        if i % FRESH_EVERY == 0:
            fresh += 1
            cache = env.path(f'cache{i}')
            what = 'fresh cache dir after a SIGKILL'
        else:
            what = 'unclean cache dir'
        log(f'round {i + 1 if i < KILLS else "final"}: remount on the '
            f'{what}')

    # the last kill's cache (unclean or fresh), then a clean takeover
    def stop_clean(mnt, dc):
        try:
            dc.stop()
            mnt.stop()
            mnt.check()
        finally:
            dc.stop()
            mnt.stop()

    stop_clean(*mount_and_check('final', what)[:2])
    cache = env.path('cache-takeover')
    mnt, dc, present = mount_and_check('takeover',
                                       'fresh cache dir after a clean unmount')
    stop_clean(mnt, dc)

    counts = {k: sum(d.outcome == k for d in deliveries)
              for k in ('ack', 'temp', 'perm', 'conn')}
    row = dict(kills=KILLS, fresh=fresh, attempted=len(deliveries),
               present=present,
               corrupt=sum(len(dovecot_bad_lines(d, r'(?i)corrupt'))
                           for d in dcs),
               fatal_after_kill=len(fatal_after_kill), seed=seed, **counts)
    if fatal_after_kill:
        log('Panic/Fatal lines Dovecot logged after a kill (its mount died '
            'under it), e.g.:\n    ' + '\n    '.join(fatal_after_kill[:5]))
    log('kill loop:\n' + table([row], KILL_COLS))
    results_out('kill_loop', [row])
    if row['corrupt']:
        fail(f'{row["corrupt"]} Dovecot log lines report corruption')
    if row['ack'] == 0:
        fail('no delivery was acknowledged')


if __name__ == '__main__':
    main_wrapper('test_dovecot_kill_loop', run, 57)
