#!/usr/bin/python3
"""test_dovecot_store_faults_on_s3.py: Dovecot on oboxfs keeps every
acknowledged delivery while the S3 store misbehaves (CONTRACT §5, §9).

maildir on the local Swift S3, reached through
tests/fixtures/s3-fault-proxy.py.
On one mount (A), each fault kind in turn while 8 LMTP senders and 4 IMAP
readers run (faultload.MixedLoad):
  error    10% of the requests answered 503 SlowDown / 500 InternalError
  latency  10% of the requests delayed 2 s
  reset    10% of the requests reset (RST) mid-body (PUT bodies, replies)
  down     the store refuses every connection for a while, then is back
           (longer than retry_timeout: early deliveries must be refused with
           4xx, later ones ridden out)
then, on a remount of A's cache with the fault= store layer
  fault=   10% of all store operations fail with "throttled" above the S3
           retries: a failed mail PUT must become an LMTP 4xx.
After each kind: no LMTP 5xx ever; every acknowledged mail is in its INBOX
with its bytes (IMAP); no body read back differs; the longest file-system
call (timed by a prober doing a delivery's calls on the mount) stays within
the retry budget for an fsync of a mail (one FUSE request that stores it;
faultload.py explains the bound), and within the fault's duration + that
for everything else (maildir delivery renames queue on the kernel's rename
mutex: see faultload.py); uploads resume by
themselves once the store is back (index_dirty_users reaches 0 with no
remount and no SIGUSR1).  At the end a takeover: mount B on a FRESH cache
dir, straight on Swift: every acknowledged mail of every kind is there with
its bytes, and no Dovecot log mentions corruption (or a Panic/Fatal).

Short by default (CI: 6 s of load per kind, store down 13 s with
retry_timeout=4: the first delivery renames in the queue fail, the last
ones ride the outage out); OBOXFS_RELIABILITY_LONG=1 (bench/reliability-run):
60 s per kind, the store down 60 s with the default retry budget (60 s).
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 54 .. + 56.
"""
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import main_wrapper, store_setup  # noqa: E402
from faultload import (FAULT_COLS, FS_SLACK_S, LONG, FaultProxy,  # noqa: E402
                       MixedLoad, check_present, dovecot_bad_lines,
                       dovecot_error_count, results_out, table)
from mailtest import (Dovecot, OboxfsMount, S3Config, TestEnv,  # noqa: E402
                      fail, log, user_name)

FMT = 'maildir'
if LONG:
    LOAD_S = 60
    DOWN = (10, 60, 20)          # load before, store down, load after
    S3_OPTS = []                 # the defaults: retry 60 s, request 60 s
    RETRY_S, REQUEST_S = 60, 60
    UPLOAD_INTERVAL = 30
else:
    LOAD_S = 6
    DOWN = (3, 13, 6)
    RETRY_S, REQUEST_S = 4, 4
    S3_OPTS = [f'retry_timeout={RETRY_S}', f'request_timeout={REQUEST_S}']
    UPLOAD_INTERVAL = 3
FS_BOUND_S = max(RETRY_S, REQUEST_S) + FS_SLACK_S
LMTP_TIMEOUT = 4 * FS_BOUND_S + 60
FAULT_SPEC = 'ops=all;error=throttled;rate=0.1'


def wait_uploads_idle(mnt, bound):
    """Seconds until no user is dirty and nothing is queued, by the daemon's
    own timer (no SIGUSR1); fails after bound seconds."""
    t0 = time.monotonic()
    while True:
        s = mnt.stats()
        if s['index_dirty_users'] == 0 and s['index_uploads_queued'] == 0:
            return time.monotonic() - t0, s
        if time.monotonic() - t0 > bound:
            fail(f'uploads did not finish by themselves within {bound} s '
                 f'of the load\'s end: index_dirty_users '
                 f'{s["index_dirty_users"]}, queued '
                 f'{s["index_uploads_queued"]}, failures '
                 f'{s["index_upload_failures"]}')
        time.sleep(0.2)


def phase(kind, mnt, dc, users, sent, earlier, seed, fault_on, fault_off,
          pre, fault_s, post, injected=None):
    """Run the load pre + fault_s + post seconds with the fault on for the
    middle part; check (with the deliveries of the earlier phases) and
    return the row of the table and this phase's deliveries."""
    s0 = mnt.stats()
    load = MixedLoad(dc, mnt, users, sent, tag=kind.replace('=', ''),
                     seed=seed, lmtp_timeout=LMTP_TIMEOUT)
    load.start()
    try:
        time.sleep(pre)
        t_fault = time.monotonic()
        fault_on()
        time.sleep(fault_s)
        fault_off()
        t_back = time.monotonic()
        time.sleep(post)
    finally:
        fault_off()
        load.stop()
    t_end = time.monotonic()
    row = dict(kind=kind, **load.counts())
    acks_after = [d.t1 - t_back for d in load.deliveries
                  if d.outcome == 'ack' and d.t1 >= t_back]
    row['first_ack_s'] = round(min(acks_after), 2) if acks_after else None
    # deliveries in flight when the store came back, then acknowledged
    row['ridden_out'] = sum(1 for d in load.deliveries if d.outcome == 'ack'
                            and d.t0 < t_back < d.t1) if fault_s and pre \
        else None
    row['injected'] = injected() if injected else None
    row['fs_max_s'] = round(load.fs_max[0], 2)
    row['fs_max_op'] = load.fs_max[1]
    fsync_max = load.fs_max_by_op.get('fsync', 0)
    row['fsync_max_s'] = round(fsync_max, 2)
    row['rename_max_s'] = round(load.fs_max_by_op.get('rename', 0), 2)
    row['rename_nostore_max_s'] = round(
        load.fs_max_by_op.get('rename new->cur', 0), 2)
    row['fs_calls'], row['fs_errors'] = load.fs_calls, load.fs_errors
    row['reader_ops'], row['reader_errors'] = load.reader_ops, \
        load.reader_errors
    row['reader_max_s'] = round(load.reader_max, 2)
    bound = RETRY_S + 3 * UPLOAD_INTERVAL + 60
    idle_s, s1 = wait_uploads_idle(mnt, bound)
    row['recover_s'] = round(t_end - t_back + idle_s, 2)
    row['upload_failures'] = s1['index_upload_failures'] - \
        s0['index_upload_failures']
    row['store_retries'] = s1['retries'] - s0['retries']
    row['store_errors'] = s1['errors'] - s0['errors']
    # the daemon's own longest request (since the mount), and its fsyncs'
    ops = {k[len('fuse_'):-len('_max_usecs')]: v for k, v in s1.items()
           if k.startswith('fuse_') and k.endswith('_max_usecs')
           and k != 'fuse_request_max_usecs'}
    row['daemon_max_s'] = round(s1['fuse_request_max_usecs'] / 1e6, 2)
    row['daemon_max_op'] = max(ops, key=ops.get) if ops else None
    daemon_fsync_s = s1.get('fuse_fsync_max_usecs', 0) / 1e6
    row['daemon_fsync_max_s'] = round(daemon_fsync_s, 2)
    log(f'{kind}: {row}')
    if load.reader_error_samples:
        log(f'{kind}: IMAP reader errors, e.g.: ' +
            ' | '.join(load.reader_error_samples[:3]))
    if load.fs_error_samples:
        log(f'{kind}: prober errors, e.g.: ' +
            ' | '.join(load.fs_error_samples[:3]))
    temps = [d for d in load.deliveries if d.outcome != 'ack']
    if temps:
        log(f'{kind}: not acknowledged, e.g.: ' + ' | '.join(
            f'{d.outcome} {d.code} {str(d.reply)[:80]} after {d.secs:.1f} s'
            for d in temps[:3]))

    problems = []
    if load.corrupt:
        problems.append('bodies read back differ: ' +
                        '; '.join(load.corrupt[:5]))
    perm = [d for d in load.deliveries if d.outcome == 'perm']
    if perm:
        problems.append(f'{len(perm)} deliveries refused with a PERMANENT '
                        f'error, e.g. {perm[0].code} {perm[0].reply}')
    if row['ack'] == 0:
        problems.append('no delivery was acknowledged at all')
    if fsync_max > FS_BOUND_S:
        problems.append(f'the fsync of a mail took {fsync_max:.1f} s, more '
                        f'than the retry budget bound {FS_BOUND_S:.0f} s')
    if daemon_fsync_s > FS_BOUND_S:
        problems.append(f'the daemon took {daemon_fsync_s:.1f} s over an '
                        f'fsync, more than the retry budget bound '
                        f'{FS_BOUND_S:.0f} s')
    if not s1.get('fuse_fsync_requests'):
        problems.append('the daemon counted no fsync request')
    if 'fsync' not in load.fs_max_by_op:
        problems.append('the prober never completed an fsync')
    hang = fault_s + FS_BOUND_S + FS_SLACK_S
    if load.fs_max[0] > hang:
        problems.append(f'a file-system call ({load.fs_max[1]}) took '
                        f'{load.fs_max[0]:.1f} s, more than the fault '
                        f'({fault_s} s) + the retry budget bound')
    if row['lmtp_max_s'] > hang + FS_BOUND_S:
        problems.append(f'an LMTP transaction took {row["lmtp_max_s"]} s')
    f_idle = s1['index_upload_failures']
    # the fault= layer stays on: a FETCH of a mail not in the cache fails
    # now and then (no retries above the S3 layer), so it is done again
    _, _, found = check_present(f'{kind}: on the mount', dc, users,
                                earlier + load.deliveries, sent,
                                tries=1 if kind != 'fault=' else 10)
    row['present'] = sum(1 for d in load.deliveries
                         if d.outcome == 'ack' and d.mail.msgid in found)
    f_later = mnt.stats()['index_upload_failures']
    if f_later != f_idle and kind != 'fault=':  # fault= is still on
        problems.append(f'index_upload_failures still growing after the '
                        f'store was back and idle: {f_idle} -> {f_later}')
    if problems:
        fail(f'{kind}: ' + '; '.join(problems))
    return row, load.deliveries


def run(name, port_offset):
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    seed = int(os.environ.get('OBOXFS_FAULT_SEED') or
               random.randrange(1 << 30))
    log(f'seed {seed} (OBOXFS_FAULT_SEED={seed} repeats the random choices)'
        f'; {"LONG" if LONG else "short"} mode')
    url, opts = store_setup(env, 's3')
    s3 = S3Config()
    proxy = FaultProxy(env, s3.endpoint, seed).start()
    via_proxy = [o for o in opts if not o.startswith('endpoint=')] + [
        f'endpoint={proxy.endpoint}', 'connect_timeout=2',
        f'upload_interval={UPLOAD_INTERVAL}', 'cache_size=4M'] + S3_OPTS
    users = [user_name(i) for i in range(1, 5)]
    sent, deliveries, rows = {}, [], []
    mp = env.path('mnt')
    logs = []

    def pstat(*keys):
        return lambda: sum(proxy.stats()[k] for k in keys)

    # ---- A: the proxy's faults
    a = OboxfsMount(env, url, mp, env.path('cacheA'), via_proxy,
                    log_path=env.path('oboxfs-A.log'))
    dca = Dovecot(env, mp, FMT, rundir=env.path('dcA'))
    logs.append(dca)
    try:
        a.start()
        dca.start()
        for kind, words, keys in (
                ('error', ('error', 0.1), ('errors_injected',)),
                ('latency', ('latency', 0.1, 2000), ('delayed',)),
                ('reset', ('reset', 0.1), ('resets',))):
            base = pstat(*keys)()
            row, ds = phase(kind, a, dca, users, sent, deliveries, seed,
                            lambda w=words: proxy.mode(*w),
                            lambda: proxy.mode('pass'), 0, LOAD_S, 0,
                            injected=lambda k=keys, b=base: pstat(*k)() - b)
            rows.append(row)
            deliveries += ds
        pre, down, post = DOWN
        row, ds = phase('down', a, dca, users, sent, deliveries, seed,
                        lambda: proxy.mode('down'),
                        lambda: proxy.mode('pass'), pre, down, post)
        rows.append(row)
        deliveries += ds
        if not LONG and (row['temp'] == 0 or row['ridden_out'] == 0):
            fail(f'store down {down} s with retry_timeout {RETRY_S} s: '
                 f'expected both deliveries refused with 4xx ({row["temp"]})'
                 f' and deliveries ridden out ({row["ridden_out"]})')
        dca.stop()
        a.stop()
        a.check()
    finally:
        dca.stop()
        a.stop()

    # ---- A again (same cache), with the fault= layer above the retries
    spec = f'{FAULT_SPEC};seed={seed}'
    a2 = OboxfsMount(env, url, mp, env.path('cacheA'),
                     via_proxy + [f'fault={spec}'],
                     log_path=env.path('oboxfs-A2.log'))
    dca2 = Dovecot(env, mp, FMT, rundir=env.path('dcA2'))
    logs.append(dca2)
    try:
        a2.start()
        dca2.start()
        e0 = a2.stats()['errors']
        row, ds = phase('fault=', a2, dca2, users, sent, deliveries, seed,
                        lambda: None, lambda: None, 0, LOAD_S, 0,
                        injected=lambda: a2.stats()['errors'] - e0)
        rows.append(row)
        deliveries += ds
        dca2.stop()
        a2.stop()
        a2.check()
    finally:
        dca2.stop()
        a2.stop()
    proxy.stop()

    # ---- B: takeover on a fresh cache dir, straight on Swift
    b = OboxfsMount(env, url, mp, env.path('cacheB'), opts,
                    log_path=env.path('oboxfs-B.log'))
    dcb = Dovecot(env, mp, FMT, rundir=env.path('dcB'))
    logs.append(dcb)
    try:
        b.start()
        dcb.start()
        _, _, found = check_present('takeover on a fresh cache dir', dcb,
                                    users, deliveries, sent)
        for r in rows:
            r['present_takeover'] = sum(
                1 for d in deliveries if d.outcome == 'ack' and
                d.mail.msgid in found and
                d.mail.msgid.startswith(f'<{r["kind"].replace("=", "")}.'))
        dcb.stop()
        b.stop()
        b.check()
    finally:
        dcb.stop()
        b.stop()

    bad = [f'{dc.log_path}: {ln}' for dc in logs
           for ln in dovecot_bad_lines(dc)]
    log('dovecot Error lines (EIO from the store is expected under '
        'faults): ' + ', '.join(f'{os.path.basename(dc.rundir)} '
                                f'{dovecot_error_count(dc)}' for dc in logs))
    log('store faults, per kind (retry budget: retry_timeout '
        f'{RETRY_S} s, request_timeout {REQUEST_S} s; FS bound '
        f'{FS_BOUND_S:.0f} s):\n' + table(rows, FAULT_COLS + [
            ('fsync_max_s', 'max-fsync-s'), ('rename_max_s', 'max-rename-s'),
            ('rename_nostore_max_s', 'max-cur-rename-s'),
            ('daemon_max_s', 'daemon-max-s'), ('daemon_max_op', 'op'),
            ('daemon_fsync_max_s', 'daemon-fsync-s'),
            ('injected', 'injected'), ('present_takeover', 'takeover')]))
    results_out('store_faults', rows)
    if bad:
        fail('Dovecot logged corruption or a Panic/Fatal:\n    ' +
             '\n    '.join(bad[:20]))


if __name__ == '__main__':
    main_wrapper('test_dovecot_store_faults_on_s3', run, 54)
