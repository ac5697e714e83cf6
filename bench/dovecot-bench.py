#!/usr/bin/python3
"""dovecot-bench.py: stock Dovecot on (a) a plain local directory, (b) oboxfs
on a file:// store and (c) oboxfs on a local Swift S3, measured the same way:
LMTP deliveries/s with parallel senders, IMAP FETCH of every body/s with
parallel clients, object-store requests per delivery (from the daemon's
MOUNTPOINT/.oboxfs-stats), and postmark's small-file transactions/s in a
directory of a user's tree (the kind of file work Dovecot does on its index
files; the daemon's FUSE request counters say where its time goes).  Rounds are interleaved (a, b, c, a, b, c, ...);
the table shows medians and the ratios b/a and c/a.  Run by hand as root
(needs /dev/fuse, Dovecot, Swift for (c)); see bench/README.md.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402 - also puts tests/integration on the path
from benchlib import TOP, Swift, cleanup, delta, setup_workdir  # noqa: E402,F401
from mailtest import (Dovecot, Imap, OboxfsMount, S3Config, TestEnv,
                      deliver_parallel, fail, log, make_mails, run_threads,
                      store_requests, user_name)

MODES = {'a': 'plain dir', 'b': 'oboxfs file://', 'c': 'oboxfs s3 (Swift)'}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(ap)
    ap.add_argument('--modes', default='abc',
                    help='which of a (plain), b (file://), c (s3) to run')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--mails', type=int, default=400)
    ap.add_argument('--users', type=int, default=8)
    ap.add_argument('--senders', type=int, default=8, help='LMTP sessions')
    ap.add_argument('--fetchers', type=int, default=4, help='IMAP clients')
    ap.add_argument('--fetch-passes', type=int, default=3,
                    help='times every body is fetched (timed together)')
    ap.add_argument('--min-size', type=int, default=1024)
    ap.add_argument('--max-size', type=int, default=100 * 1024)
    ap.add_argument('--format', choices=('maildir', 'sdbox'), default='maildir')
    ap.add_argument('--port', type=int, default=19640,
                    help='Dovecot ports PORT..PORT+2')
    ap.add_argument('--s3-port', type=int, default=18640,
                    help='Swift ports PORT..PORT+4')
    ap.add_argument('--postmark', type=int, default=20000,
                    help='postmark transactions (0: no postmark run)')
    ap.add_argument('--postmark-files', type=int, default=2000)
    ap.add_argument('--mount-options', default='',
                    help='extra oboxfs -o options, comma-separated')
    a = ap.parse_args()
    if not a.modes or set(a.modes) - set(MODES):
        ap.error('--modes takes letters from "abc"')
    if min(a.rounds, a.mails, a.senders, a.fetchers, a.fetch_passes,
           a.postmark_files) < 1 or a.postmark < 0:
        ap.error('counts must be positive')
    if a.postmark and shutil.which('postmark') is None:
        ap.error('postmark is not installed (scripts/install-deps --bench, '
                 'or --postmark 0)')
    return a


def fetch_all(dc, users, clients, passes):
    """Every body of every user's INBOX, `passes` times, with `clients`
    parallel sessions; returns (messages per pass, bytes, seconds)."""
    counts = []

    def work(my_users):
        n = size = 0
        for _ in range(passes):
            for u in my_users:
                with Imap(dc.imap_port, u) as c:
                    c.select('INBOX', readonly=True)
                    bodies = c.fetch_bodies()
                    n += len(bodies)
                    size += sum(len(b) for b in bodies.values())
        counts.append((n, size))
    parts = [users[i::clients] for i in range(clients)]
    t0 = time.monotonic()
    run_threads(work, [p for p in parts if p])
    elapsed = time.monotonic() - t0
    return (sum(c[0] for c in counts) // passes, sum(c[1] for c in counts),
            elapsed)


def postmark(args, directory):
    """postmark's transactions/s in directory (made here)."""
    os.makedirs(directory)
    cfg = os.path.join(os.path.dirname(directory), 'postmark.cfg')
    with open(cfg, 'w') as f:
        f.write(f'set location {directory}\nset number {args.postmark_files}\n'
                f'set transactions {args.postmark}\nrun\nquit\n')
    t0 = time.monotonic()
    r = subprocess.run(['postmark', cfg], capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        fail(f'postmark failed ({r.returncode}): {r.stdout}{r.stderr}')
    return args.postmark / elapsed


def fuse_profile(before, after, units, unit, top=8):
    """Where the daemon's time went between two stats: per unit (e.g. per
    delivery) its FUSE requests and microseconds in all, then the
    operations it spent the most time on ('op N/unit x M us')."""
    d = {k: v - before.get(k, 0) for k, v in after.items()}
    ops = {k[5:-6]: v for k, v in d.items()
           if k.startswith('fuse_') and k.endswith('_usecs') and
           not k.endswith('_max_usecs') and k != 'fuse_request_max_usecs'}
    parts = [f'per {unit}: {d.get("fuse_requests", 0) / units:.1f} requests,'
             f' {sum(ops.values()) / units:.0f} us;']
    for op in sorted(ops, key=ops.get, reverse=True)[:top]:
        n = d.get(f'fuse_{op}_requests', 0)
        if n:
            parts.append(f'{op} {n / units:.2f} x {ops[op] / n:.0f} us')
    return ' '.join(parts)


def one_run(args, mode, rnd, mails, users):
    """Mount (or not), start Dovecot, deliver, fetch, tear down."""
    env = TestEnv(f'bench-{mode}{rnd}')
    env.plain = (mode == 'a')
    env.fresh_dir()
    opts = [o for o in args.mount_options.split(',') if o]
    url = None
    if mode == 'b':
        os.makedirs(env.path('store'))
        url = 'file://' + env.path('store')
    elif mode == 'c':
        s3 = S3Config()
        cred = s3.write_credentials(env.path('s3.cred'))
        url = f's3://{s3.bucket}/bench-{os.getpid()}-{rnd}'
        opts += [f'endpoint={s3.endpoint}', f'region={s3.region}',
                 f'credentials={cred}']
    res = {}
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache'),
                     opts) as mnt:
        with Dovecot(env, mnt.mountpoint, args.format) as dc:
            s0 = mnt.stats()
            before = store_requests(s0) if url else 0
            t = deliver_parallel(dc.lmtp_port, mails, senders=args.senders)
            res['lmtp'] = len(mails) / t
            s1 = mnt.stats()
            after = store_requests(s1) if url else 0
            if url:
                log(f'{MODES[mode]}: LMTP: daemon time by FUSE operation: '
                    + fuse_profile(s0, s1, len(mails), 'delivery'))
            if url:
                res['req_delivery'] = (after - before) / len(mails)
            n, size, t = fetch_all(dc, users, args.fetchers,
                                   args.fetch_passes)
            if n != len(mails):
                fail(f'{MODES[mode]}: FETCH returned {n} mails, '
                     f'{len(mails)} were delivered')
            res['fetch'] = n * args.fetch_passes / t
            res['fetch_mb'] = size / t / 1e6
            if url:
                s2 = mnt.stats()
                res['req_fetch'] = ((store_requests(s2) - after) /
                                    (n * args.fetch_passes))
                log(f'{MODES[mode]}: FETCH: daemon time by FUSE operation: '
                    + fuse_profile(s1, s2, n * args.fetch_passes, 'mail'))
        if args.postmark:
            s0 = mnt.stats()
            res['postmark'] = postmark(args, os.path.join(
                mnt.mountpoint, users[0], 'postmark'))
            if url:
                log(f'{MODES[mode]}: postmark: daemon time by FUSE '
                    'operation: ' + fuse_profile(s0, mnt.stats(),
                                                 args.postmark,
                                                 'transaction'))
    subprocess.run(['rm', '-rf', '--one-file-system', env.dir])
    return res


ROWS = [('lmtp', 'LMTP deliveries/s', True),
        ('fetch', 'IMAP FETCH messages/s', True),
        ('fetch_mb', 'IMAP FETCH MB/s', True),
        ('postmark', 'postmark transactions/s', True),
        ('req_delivery', 'store requests per delivery', False),
        ('req_fetch', 'store requests per FETCHed mail', False)]


def print_table(args, results):
    modes = list(args.modes)
    cols = [MODES[m] for m in modes]
    ratio_cols = [f'{m}/a' for m in modes if m != 'a' and 'a' in modes]
    head = f'{"":34}' + ''.join(f'{c:>20}' for c in cols + ratio_cols)
    print()
    print(f'Dovecot {args.format}, {args.mails} mails of {args.min_size}-'
          f'{args.max_size} bytes to {args.users} users, {args.senders} LMTP '
          f'senders, {args.fetchers} IMAP clients; postmark '
          f'{args.postmark_files} files, {args.postmark} transactions; '
          f'medians of {args.rounds} interleaved rounds')
    print(head)
    for key, label, is_rate in ROWS:
        med = {}
        for m in modes:
            vals = [r[key] for r in results[m] if key in r]
            med[m] = statistics.median(vals) if vals else None
        if all(v is None for v in med.values()):
            continue
        line = f'{label:34}'
        for m in modes:
            line += f'{"-" if med[m] is None else f"{med[m]:.2f}":>20}'
        for m in modes:
            if m == 'a' or 'a' not in modes:
                continue
            if is_rate and med[m] is not None and med['a']:
                line += f'{med[m] / med["a"]:>20.2f}'
            else:
                line += f'{"":>20}'
        print(line)
    print()
    for m in modes:
        for key, label, _ in ROWS[:2] + ROWS[3:4]:
            vals = ', '.join(f'{r[key]:.1f}' for r in results[m] if key in r)
            print(f'  {MODES[m]:20} {label:24} rounds: {vals}')


def main():
    args = parse_args()
    workdir = setup_workdir(args, 'oboxfs-dovecot-bench.', args.users)
    users = [user_name(i) for i in range(1, args.users + 1)]
    mails = make_mails(users, args.mails, seed=1, min_size=args.min_size,
                       max_size=args.max_size, tag='bench')
    log(f'{len(mails)} mails, {sum(len(m.data) for m in mails) / 1e6:.1f} MB; '
        f'work dir {workdir}')
    swift = None
    results = {m: [] for m in args.modes}
    try:
        if 'c' in args.modes:
            swift = Swift(os.path.join(workdir, 'swift'), args.s3_port)
            swift.start()
        for rnd in range(1, args.rounds + 1):
            for mode in args.modes:
                r = one_run(args, mode, rnd, mails, users)
                log(f'round {rnd} {MODES[mode]}: ' + ', '.join(
                    f'{k} {v:.2f}' for k, v in r.items()))
                results[mode].append(r)
    finally:
        cleanup(args, workdir, swift)
    print_table(args, results)
    return 0


if __name__ == '__main__':
    benchlib.run('dovecot-bench', main)
