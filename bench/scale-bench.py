#!/usr/bin/python3
"""scale-bench.py: does oboxfs's cost grow with the folder or the number of
users?  The figures of the scale issue, each next to its target, from one
run, oboxfs against a plain local directory with the same Dovecot:

1. folder size: deliveries/s into one INBOX at --small (1,000) and at --big
   (20,000) mails (a window of --window deliveries at each size, the
   folder filled in between); target: oboxfs's rate ratio (big/small) at
   least 0.9 x the plain directory's.  Per delivery in each window: store
   requests, bundle bytes, daemon CPU ms, index files the upload scans
   read.
2. cold login (an empty cache dir, the same store): LOGIN + SELECT INBOX +
   UID FETCH 1:* (FLAGS) of a user with --small mails and of the one with
   --big; targets: at most 2 store requests more for the big one, time at
   most 3x the plain directory's (first login after a Dovecot restart).
3. users: --window deliveries to 8 users, then --user-mails (20) mails to
   each of --many-users (2,000), round-robin; target: the rate with many
   users at least 0.9 x the rate with 8.  The daemon's RSS per loaded user
   and per cached mail entry.

Modes: a (plain dir), c (oboxfs; parts 1-2 on --folder-store: a local
Swift S3 started here (default) or file, part 3 on --users-store: file
(default) or s3).  Run by hand as root;
see bench/README.md.
"""
import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402 - also puts tests/integration on the path
from benchlib import (Swift, cleanup, delta, login_fetch_flags,  # noqa: E402
                      proc_rss, setup_workdir)
from mailtest import (Dovecot, OboxfsMount, S3Config, TestEnv,  # noqa: E402
                      deliver_parallel, fail, log, make_mails,
                      store_requests, user_name)

BIG_USER, SMALL_USER = user_name(1), user_name(2)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(ap)
    ap.add_argument('--modes', default='ac',
                    help='a (plain dir) and/or c (oboxfs)')
    ap.add_argument('--parts', default='123', help='which parts to run')
    ap.add_argument('--small', type=int, default=1000)
    ap.add_argument('--big', type=int, default=20000)
    ap.add_argument('--window', type=int, default=600,
                    help='deliveries measured at each size (and to 8 users)')
    ap.add_argument('--senders', type=int, default=16)
    ap.add_argument('--many-users', type=int, default=2000)
    ap.add_argument('--user-mails', type=int, default=20)
    ap.add_argument('--users-store', choices=('file', 's3'), default='file')
    ap.add_argument('--folder-store', choices=('s3', 'file'), default='s3',
                    help='the store of parts 1-2 (file: the folder cost '
                    'without the S3 round trips)')
    ap.add_argument('--min-size', type=int, default=2048)
    ap.add_argument('--max-size', type=int, default=4096)
    ap.add_argument('--port', type=int, default=19980,
                    help='first of the 3 Dovecot ports')
    ap.add_argument('--s3-port', type=int, default=18980,
                    help='first of the 5 Swift ports')
    a = ap.parse_args()
    if not a.modes or set(a.modes) - set('ac') or set(a.parts) - set('123'):
        ap.error('--modes takes letters from "ac", --parts from "123"')
    if min(a.small, a.window, a.senders, a.many_users, a.user_mails) < 1 or \
            a.big <= a.small:
        ap.error('counts must be positive and --big above --small')
    return a


def proc_cpu_ms(pid):
    """user + system CPU of a process, ms"""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf('SC_CLK_TCK')


def window(res, tag, mnt, dc, mails, senders):
    """deliver mails, with the daemon's figures per delivery"""
    plain = mnt.env.plain
    if not plain:
        s0 = mnt.wait_uploads_idle(timeout=600)
        cpu0 = proc_cpu_ms(mnt.proc.pid)
    secs = deliver_parallel(dc.lmtp_port, mails, senders=senders)
    res[f'{tag}_rate'] = len(mails) / secs
    if plain:
        return
    s1 = mnt.wait_uploads_idle(timeout=600)
    n = len(mails)
    res[f'{tag}_req'] = (store_requests(s1) - store_requests(s0)) / n
    res[f'{tag}_bundle_bytes'] = delta(s0, s1, 'index_bundle_bytes_stored') / n
    res[f'{tag}_cpu_ms'] = (proc_cpu_ms(mnt.proc.pid) - cpu0) / n
    res[f'{tag}_scan_read'] = delta(s0, s1, 'index_scan_files_read') / n
    res[f'{tag}_scan_reused'] = delta(s0, s1, 'index_scan_files_reused') / n
    res[f'{tag}_last_base'] = s1.get('index_last_base_bytes', 0)
    res[f'{tag}_bases'] = delta(s0, s1, 'index_bases_stored')
    res[f'{tag}_diffs'] = delta(s0, s1, 'index_diffs_stored')


def s3_options(env, name):
    s3 = S3Config()
    cred = s3.write_credentials(env.path('s3.cred'))
    return (f's3://{s3.bucket}/{name}-{os.getpid()}',
            [f'endpoint={s3.endpoint}', f'region={s3.region}',
             f'credentials={cred}'])


def store_options(env, kind, name):
    """the store URL and mount options of a part: kind 's3' (the local
    Swift) or 'file' (a file:// store in the part's directory)"""
    if kind == 's3':
        return s3_options(env, name)
    os.makedirs(env.path('store'))
    return f'file://{env.path("store")}', []


def part_folders(args, mode, mails):
    """parts 1 and 2 for one mode"""
    env = TestEnv(f'scale-{mode}')
    env.plain = (mode == 'a')
    env.fresh_dir()
    res = {}
    if env.plain:
        url, opts = None, []
    else:
        url, opts = store_options(env, args.folder_store, 'scale')
    mp = env.path('mnt')
    small_user, big = mails['small_user'], mails['big']
    w = args.window
    with OboxfsMount(env, url, mp, env.path('cache1'), opts) as mnt:
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc1')) as dc:
            deliver_parallel(dc.lmtp_port, small_user, senders=args.senders)
            deliver_parallel(dc.lmtp_port, big[:args.small],
                             senders=args.senders)
            window(res, 'small', mnt, dc, big[args.small:args.small + w],
                   args.senders)
            log(f'{mode}: at {args.small}: {res}')
            t0 = time.monotonic()
            deliver_parallel(dc.lmtp_port, big[args.small + w:args.big],
                             senders=args.senders)
            res['fill_rate'] = (args.big - args.small - w) / \
                (time.monotonic() - t0)
            window(res, 'big', mnt, dc, big[args.big:args.big + w],
                   args.senders)
            log(f'{mode}: at {args.big}: {res}')
            if env.plain:
                dc.stop()
                dc.start()
                res['cold_small_secs'] = login_fetch_flags(
                    dc, SMALL_USER, len(small_user))
                res['cold_big_secs'] = login_fetch_flags(
                    dc, BIG_USER, args.big + w)
    if env.plain:
        return res
    # a second machine: empty cache dir, the same store
    with OboxfsMount(env, url, mp, env.path('cache2'), opts,
                     log_path=env.path('mnt2.oboxfs.log')) as mnt2:
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc2')) as dc:
            for tag, user, n in (('small', SMALL_USER, len(small_user)),
                                 ('big', BIG_USER, args.big + w)):
                s0 = mnt2.stats()
                res[f'cold_{tag}_secs'] = login_fetch_flags(dc, user, n)
                s1 = mnt2.stats()
                res[f'cold_{tag}_req'] = store_requests(s1) - \
                    store_requests(s0)
                res[f'cold_{tag}_listed'] = delta(s0, s1,
                                                  'index_load_mails_listed')
    return res


def part_users(args, mode, mails):
    env = TestEnv(f'users-{mode}')
    env.plain = (mode == 'a')
    env.fresh_dir()
    res = {}
    if env.plain:
        url, opts = None, []
    else:
        url, opts = store_options(env, args.users_store, 'users')
    mp = env.path('mnt')
    with OboxfsMount(env, url, mp, env.path('cache'), opts) as mnt:
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc')) as dc:
            if not env.plain:
                rss0 = proc_rss(mnt.proc.pid)
            window(res, 'u8', mnt, dc, mails['few'], args.senders)
            window(res, 'many', mnt, dc, mails['many'], args.senders)
            if not env.plain:
                time.sleep(2)
                s = mnt.stats()
                rss = proc_rss(mnt.proc.pid)
                res['rss'] = rss
                res['rss_per_user'] = (rss - rss0) / (args.many_users + 8)
                res['rss_per_mail'] = (rss - rss0) / \
                    (len(mails['few']) + len(mails['many']))
                res['cache_entries'] = s.get('oboxfs_mailcache_entries', 0)
                res['cache_memory'] = s.get('oboxfs_mailcache_memory_bytes',
                                            0)
                res['metacache_bytes'] = s.get('oboxfs_metacache_bytes', 0)
                res['metacache_walks'] = s.get('oboxfs_metacache_walks_total',
                                               0)
            log(f'{mode}: users: {res}')
    return res


def print_table(args, results):
    a, c = results.get('a', {}), results.get('c', {})
    w = 50

    def row(label, va='', vc='', extra=''):
        print(f'{label:{w}}{va:>12}{vc:>14}   {extra}')

    def num(r, k, f='{:.1f}'):
        return f.format(r[k]) if k in r else '-'

    def ratio(r, k1, k2):
        return r[k1] / r[k2] if k1 in r and k2 in r and r[k2] else None
    print()
    print(f'Dovecot maildir, mails of {args.min_size}-{args.max_size} bytes, '
          f'{args.senders} LMTP sessions, windows of {args.window} '
          'deliveries; oboxfs at the default mount options')
    row('', 'plain dir', 'oboxfs', 'target')
    if '1' in args.parts:
        print('1. folder size (one INBOX; parts 1-2 on ' +
              ('the local Swift S3)' if args.folder_store == 's3' else
               'file://)'))
        row(f'   deliveries/s at {args.small:,} mails', num(a, 'small_rate'),
            num(c, 'small_rate'))
        row(f'   deliveries/s at {args.big:,} mails', num(a, 'big_rate'),
            num(c, 'big_rate'))
        ra, rc = ratio(a, 'big_rate', 'small_rate'), \
            ratio(c, 'big_rate', 'small_rate')
        row('   rate at big / rate at small',
            f'{ra:.2f}' if ra else '-', f'{rc:.2f}' if rc else '-',
            f'oboxfs >= 0.9 x plain = {0.9 * ra:.2f}' if ra else '')
        for tag, n in (('small', args.small), ('big', args.big)):
            row(f'   at {n:,}: store requests per delivery', '',
                num(c, f'{tag}_req', '{:.3f}'), '<= 1.1')
            row(f'   at {n:,}: bundle bytes per delivery', '',
                num(c, f'{tag}_bundle_bytes', '{:,.0f}'),
                'grows with what changed')
            row(f'   at {n:,}: bases + diffs stored; last base, bytes', '',
                f'{c.get(f"{tag}_bases", "-")} + {c.get(f"{tag}_diffs", "-")};'
                f' {c.get(f"{tag}_last_base", 0):,}' if c else '-')
            row(f'   at {n:,}: daemon CPU ms per delivery', '',
                num(c, f'{tag}_cpu_ms', '{:.2f}'))
            row(f'   at {n:,}: index files read / reused per delivery',
                '', num(c, f'{tag}_scan_read', '{:.1f}') + ' / ' +
                num(c, f'{tag}_scan_reused', '{:.0f}'))
    if '2' in args.parts:
        print('2. cold login (empty cache): LOGIN+SELECT+FETCH 1:* FLAGS')
        for tag, n in (('small', args.small), ('big', args.big)):
            row(f'   {n:,} mails: seconds', num(a, f'cold_{tag}_secs', '{:.3f}'),
                num(c, f'cold_{tag}_secs', '{:.3f}'),
                f'ratio {c[f"cold_{tag}_secs"] / a[f"cold_{tag}_secs"]:.2f}'
                ' (<= 3)' if f'cold_{tag}_secs' in a and
                f'cold_{tag}_secs' in c else '')
            row(f'   {n:,} mails: store requests', '',
                num(c, f'cold_{tag}_req', '{}'),
                f'mail keys listed: {c.get(f"cold_{tag}_listed", "-")}')
        if 'cold_big_req' in c and 'cold_small_req' in c:
            row('   requests, big - small', '',
                f'{c["cold_big_req"] - c["cold_small_req"]}', '<= 2')
    if '3' in args.parts:
        print(f'3. users (oboxfs on {args.users_store}://)')
        row(f'   deliveries/s to 8 users ({args.window})', num(a, 'u8_rate'),
            num(c, 'u8_rate'))
        row(f'   deliveries/s to {args.many_users:,} users '
            f'({args.user_mails} each)', num(a, 'many_rate'),
            num(c, 'many_rate'))
        for r, name in ((a, 'plain'), (c, 'oboxfs')):
            q = ratio(r, 'many_rate', 'u8_rate')
            if q:
                row(f'   {name}: many users / 8 users', '', f'{q:.2f}',
                    '>= 0.9' if r is c else '')
        row('   daemon RSS after, MB', '', num(c, 'rss', '{:.0f}')
            if 'rss' not in c else f'{c["rss"] / 1e6:.0f}')
        row('   RSS growth per user, bytes', '', num(c, 'rss_per_user', '{:,.0f}'))
        row('   RSS growth per delivered mail, bytes', '',
            num(c, 'rss_per_mail', '{:,.0f}'))
        if c.get('cache_entries'):
            row('   mail cache: entries, memory per entry (bytes)', '',
                f'{c["cache_entries"]:,}, '
                f'{c["cache_memory"] / c["cache_entries"]:.0f}', '<= 200')
        row('   metacache bytes / walks', '',
            f'{c.get("metacache_bytes", "-"):,} / {c.get("metacache_walks", "-")}'
            if c else '-')


def main():
    args = parse_args()
    workdir = setup_workdir(args, 'oboxfs-scale-bench.',
                            args.many_users + 8 + 2)
    mails = {}
    if set(args.parts) & set('12'):
        mails['small_user'] = make_mails([SMALL_USER], args.small, seed=3,
                                         min_size=args.min_size,
                                         max_size=args.max_size, tag='s')
        mails['big'] = make_mails([BIG_USER], args.big + args.window, seed=4,
                                  min_size=args.min_size,
                                  max_size=args.max_size, tag='b')
    if '3' in args.parts:
        few = [user_name(i) for i in range(3, 11)]
        many = [user_name(i) for i in range(11, 11 + args.many_users)]
        mails['few'] = make_mails(few, args.window, seed=5,
                                  min_size=args.min_size,
                                  max_size=args.max_size, tag='f')
        mails['many'] = make_mails(many, args.many_users * args.user_mails,
                                   seed=6, min_size=args.min_size,
                                   max_size=args.max_size, tag='m')
    log(f'work dir {workdir}')
    swift = None
    results = {}
    try:
        if 'c' in args.modes and ((set(args.parts) & set('12') and
                                   args.folder_store == 's3') or
                                  args.users_store == 's3'):
            swift = Swift(os.path.join(workdir, 'swift'), args.s3_port)
            swift.start()
        for mode in args.modes:
            res = results.setdefault(mode, {})
            t0 = time.monotonic()
            if set(args.parts) & set('12'):
                res.update(part_folders(args, mode, mails))
            if '3' in args.parts:
                res.update(part_users(args, mode, mails))
            log(f'mode {mode} done in {time.monotonic() - t0:.0f} s')
    finally:
        cleanup(args, workdir, swift)
    print_table(args, results)
    return 0


if __name__ == '__main__':
    benchlib.run('scale-bench', main)
