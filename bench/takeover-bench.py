#!/usr/bin/python3
"""takeover-bench.py: what a delivery costs and what taking a user over on
another machine costs, on oboxfs over a local Swift S3 (started and stopped
here), compared with a plain local directory where that makes sense.

1. store requests per LMTP delivery (after a warm-up) at the default mount
   options, by kind (mail PUTs, bundle PUTs, other requests), and LMTP
   deliveries/s against the plain directory;
2. one user with --mails mails in INBOX: bundle sizes after an upload on
   request (SIGUSR1), and the diff after --extra more deliveries;
3. cold login on a second mount of the same store with an EMPTY cache dir
   (IMAP LOGIN + SELECT INBOX + UID FETCH 1:* (FLAGS); the first access loads
   the user from its bundles and a rescan of its mail objects): time and
   store requests, then the same warm, and on the plain directory.

Run by hand as root (needs /dev/fuse, Dovecot, Swift); see bench/README.md.
"""
import argparse
import os
import re
import statistics
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402 - also puts tests/integration on the path
from benchlib import TOP, Swift, cleanup, delta, setup_workdir  # noqa: E402,F401
from mailtest import (Dovecot, OboxfsMount, S3Config, Store, TestEnv,
                      deliver_parallel, fail, log, make_mails, request_counts,
                      store_requests, user_name)


BIG_USER = user_name(1)
IDX_RE = re.compile(r'^[0-9a-f]{2}/[0-9a-f]{3}/([^/]+)/(?:mailboxes/'
                    r'([0-9a-f]{32})/)?idx/bundle\.[0-9a-f]{8}\.[0-9a-f]{5}\.'
                    r'[0-9a-f]{32}(-[0-9a-f]{32})?$')
MAIL_RE = re.compile(r'^[0-9a-f]{2}/[0-9a-f]{3}/([^/]+)/mailboxes/'
                     r'([0-9a-f]{32})/[0-9a-f]{32}$')


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(ap)
    ap.add_argument('--modes', default='ac',
                    help='a (plain dir) and/or c (oboxfs on Swift S3)')
    ap.add_argument('--deliveries', type=int, default=1000,
                    help='measured deliveries of part 1')
    ap.add_argument('--warmup', type=int, default=50,
                    help='deliveries before part 1 is measured')
    ap.add_argument('--users', type=int, default=4,
                    help='users of part 1 (user2..); user1 is the big one')
    ap.add_argument('--senders', type=int, default=8,
                    help='LMTP sessions of part 1')
    ap.add_argument('--mails', type=int, default=10000,
                    help='mails of the big user (part 2)')
    ap.add_argument('--bulk-senders', type=int, default=16,
                    help='LMTP sessions filling the big user')
    ap.add_argument('--extra', type=int, default=10,
                    help='mails delivered after the first upload (diff size)')
    ap.add_argument('--logins', type=int, default=3,
                    help='warm logins timed (median)')
    ap.add_argument('--min-size', type=int, default=2048)
    ap.add_argument('--max-size', type=int, default=4096)
    ap.add_argument('--format', choices=('maildir', 'sdbox'), default='maildir')
    ap.add_argument('--port', type=int, default=19940,
                    help='Dovecot ports PORT..PORT+2')
    ap.add_argument('--s3-port', type=int, default=18940,
                    help='Swift ports PORT..PORT+4')
    ap.add_argument('--mount-options', default='',
                    help='extra oboxfs -o options, comma-separated')
    a = ap.parse_args()
    if not a.modes or set(a.modes) - set('ac'):
        ap.error('--modes takes letters from "ac"')
    if min(a.deliveries, a.users, a.senders, a.mails, a.bulk_senders,
           a.extra, a.logins) < 1 or a.warmup < 0:
        ap.error('counts must be positive')
    return a


def login_fetch_flags(dc, want):
    """LOGIN + SELECT INBOX + UID FETCH 1:* (FLAGS) + LOGOUT; seconds."""
    return benchlib.login_fetch_flags(dc, BIG_USER, want)


def part1(res, mnt, dc, args, warm, measured):
    """Warm-up, then the measured deliveries with request counts."""
    if warm:
        deliver_parallel(dc.lmtp_port, warm, senders=args.senders)
        mnt.wait_uploads_idle()
    s0 = mnt.stats()
    res['p1_secs'] = deliver_parallel(dc.lmtp_port, measured,
                                      senders=args.senders)
    res['p1_rate'] = len(measured) / res['p1_secs']
    if mnt.env.plain:
        return
    s1 = mnt.wait_uploads_idle()
    n = len(measured)
    bundles = (delta(s0, s1, 'index_bases_stored') +
               delta(s0, s1, 'index_diffs_stored'))
    res['p1_req'] = (store_requests(s1) - store_requests(s0)) / n
    res['p1_by_op'] = request_counts(s0, s1)
    res['p1_mail_puts'] = (delta(s0, s1, 'requests_put') - bundles) / n
    res['p1_bundle_puts'] = bundles / n
    res['p1_bases'] = delta(s0, s1, 'index_bases_stored')
    res['p1_diffs'] = delta(s0, s1, 'index_diffs_stored')
    res['p1_bundle_bytes'] = delta(s0, s1, 'index_bundle_bytes_stored') / n
    res['p1_other'] = (store_requests(s1) - store_requests(s0) -
                       delta(s0, s1, 'requests_put')) / n
    res['p1_mails_stored'] = delta(s0, s1, 'mails_stored')
    res['p1_passes'] = delta(s0, s1, 'index_upload_passes')


def idx_objects(store):
    """({(user, folder guid or '', 'base'|'diff'): [sizes]},
    {(user, folder guid): mail objects}) from a listing of the store."""
    idx, mails = {}, {}
    for key, size in store.list():
        m = IDX_RE.match(key)
        if m:
            k = (m.group(1), m.group(2) or '', 'diff' if m.group(3) else 'base')
            idx.setdefault(k, []).append(size)
            continue
        m = MAIL_RE.match(key)
        if m:
            k = (m.group(1), m.group(2))
            mails[k] = mails.get(k, 0) + 1
    return idx, mails


def bundle_sizes(res, tag, store, stats):
    idx, mails = idx_objects(store)
    folders = [g for (u, g) in mails if u == BIG_USER]
    inbox = max(folders, key=lambda g: mails[(BIG_USER, g)]) if folders else ''
    for (u, g, kind), sizes in sorted(idx.items()):
        if u != BIG_USER:
            continue
        where = 'root' if g == '' else ('inbox' if g == inbox else g[:8])
        res[f'{tag}_{where}_{kind}'] = sizes
    res[f'{tag}_last_base'] = stats.get('index_last_base_bytes', 0)
    res[f'{tag}_last_diff'] = stats.get('index_last_diff_bytes', 0)
    res[f'{tag}_mail_objects'] = mails.get((BIG_USER, inbox), 0)
    log(f'{tag}: {BIG_USER} idx objects ' + ', '.join(
        f'{k[len(tag) + 1:]} {v}' for k, v in res.items()
        if k.startswith(tag + '_')))


def run_mode(args, mode, workdir, p1_warm, p1_mails, big, extra):
    env = TestEnv(f'tko-{mode}')
    env.plain = (mode == 'a')
    env.fresh_dir()
    res = {}
    opts = [o for o in args.mount_options.split(',') if o]
    url = store = None
    if mode == 'c':
        s3 = S3Config()
        cred = s3.write_credentials(env.path('s3.cred'))
        url = f's3://{s3.bucket}/takeover-{os.getpid()}'
        opts += [f'endpoint={s3.endpoint}', f'region={s3.region}',
                 f'credentials={cred}']
        store = Store(url, s3)
    mp = env.path('mnt')
    total = len(big) + len(extra)

    # ---- first machine: deliveries, bundle sizes
    with OboxfsMount(env, url, mp, env.path('cache1'), opts) as mnt:
        with Dovecot(env, mp, args.format, rundir=env.path('dc1')) as dc:
            part1(res, mnt, dc, args, p1_warm, p1_mails)
            log(f'{mode}: part 1: ' + ', '.join(
                f'{k} {v}' for k, v in res.items()))
            s0 = mnt.stats()
            res['bulk_secs'] = deliver_parallel(dc.lmtp_port, big,
                                                senders=args.bulk_senders)
            res['bulk_rate'] = len(big) / res['bulk_secs']
            log(f'{mode}: {len(big)} mails to {BIG_USER} in '
                f'{res["bulk_secs"]:.1f} s ({res["bulk_rate"]:.1f}/s)')
            if not env.plain:
                t0 = time.monotonic()
                s1 = mnt.upload_now(timeout=600)
                res['upload_secs'] = time.monotonic() - t0
                n = len(big)
                res['bulk_req'] = (store_requests(s1) -
                                   store_requests(s0)) / n
                res['bulk_bundle_bytes'] = delta(
                    s0, s1, 'index_bundle_bytes_stored') / n
                res['bulk_bases'] = delta(s0, s1, 'index_bases_stored')
                res['bulk_diffs'] = delta(s0, s1, 'index_diffs_stored')
                bundle_sizes(res, 'up1', store, s1)
            for m in extra:
                deliver_parallel(dc.lmtp_port, [m], senders=1)
            if not env.plain:
                s2 = mnt.upload_now(timeout=600)
                res['extra_bases'] = delta(s1, s2, 'index_bases_stored')
                res['extra_diffs'] = delta(s1, s2, 'index_diffs_stored')
                res['extra_bundle_bytes'] = delta(
                    s1, s2, 'index_bundle_bytes_stored')
                bundle_sizes(res, 'up2', store, s2)
            if env.plain:  # the plain "first login": after a restart too
                dc.stop()
                dc.start()
                res['cold_secs'] = login_fetch_flags(dc, total)
                res['warm_secs'] = statistics.median(
                    login_fetch_flags(dc, total) for _ in range(args.logins))
        if not env.plain:
            t0 = time.monotonic()
        # leaving the with: Dovecot stopped, unmount, daemon exits
    if env.plain:
        return res
    res['unmount_secs'] = time.monotonic() - t0
    res['log_errors_1'] = mnt.daemon_log_problems()[1]

    # ---- second machine: empty cache dir, same store
    mnt2 = OboxfsMount(env, url, mp, env.path('cache2'), opts,
                       log_path=env.path('mnt2.oboxfs.log'))
    with mnt2:
        sm = mnt2.stats()
        with Dovecot(env, mp, args.format, rundir=env.path('dc2')) as dc:
            sd = mnt2.stats()
            res['cold_secs'] = login_fetch_flags(dc, total)
            sc = mnt2.stats()
            res['cold_req'] = store_requests(sc) - store_requests(sm)
            res['cold_req_dovecot_start'] = (store_requests(sd) -
                                             store_requests(sm))
            res['cold_by_op'] = request_counts(sm, sc)
            res['cold_bytes_in'] = delta(sm, sc, 'bytes_in')
            res['cold_users_loaded'] = delta(sm, sc, 'index_users_loaded')
            res['cold_put_back'] = delta(sm, sc, 'index_mails_put_back')
            warm = []
            for _ in range(args.logins):
                warm.append(login_fetch_flags(dc, total))
            sw = mnt2.stats()
            res['warm_secs'] = statistics.median(warm)
            res['warm_req'] = (store_requests(sw) - store_requests(sc)) / \
                args.logins
            res['warm_by_op'] = request_counts(sc, sw)
    res['log_errors_2'] = mnt2.daemon_log_problems()[1]
    return res


def fmt_sizes(sizes):
    if not sizes:
        return '-'
    return ' + '.join(f'{s:,}' for s in sizes)


def print_table(args, results):
    a, c = results.get('a', {}), results.get('c', {})
    print()
    print(f'Dovecot {args.format}; part 1: {args.deliveries} deliveries '
          f'(after {args.warmup}) to {args.users} users from {args.senders} '
          f'LMTP sessions; big user: {args.mails} + {args.extra} mails of '
          f'{args.min_size}-{args.max_size} bytes from {args.bulk_senders} '
          'sessions; default mount options' +
          (f' + {args.mount_options}' if args.mount_options else ''))
    w = 46

    def row(label, va, vc, ratio=None):
        if not isinstance(ratio, str):
            ratio = '' if ratio is None else f'{ratio:.2f}'
        print(f'{label:{w}}{va:>14}{vc:>18}{ratio:>10}')

    def num(r, k, f='{:.2f}'):
        return f.format(r[k]) if k in r else '-'

    def ratio(k):
        if k in a and k in c and a[k]:
            return c[k] / a[k]
        return None
    row('', 'plain dir', 'oboxfs s3', 'c/a')
    row('1. LMTP deliveries/s', num(a, 'p1_rate', '{:.1f}'),
        num(c, 'p1_rate', '{:.1f}'), ratio('p1_rate'))
    row('   store requests per delivery', '', num(c, 'p1_req', '{:.3f}'))
    row('     mail PUTs per delivery', '', num(c, 'p1_mail_puts', '{:.3f}'))
    row('     bundle PUTs per delivery', '',
        num(c, 'p1_bundle_puts', '{:.3f}'))
    row('     other requests per delivery', '', num(c, 'p1_other', '{:.3f}'))
    row('     bundle bytes per delivery', '',
        num(c, 'p1_bundle_bytes', '{:,.0f}'))
    row('2. filling the big user: deliveries/s', num(a, 'bulk_rate', '{:.1f}'),
        num(c, 'bulk_rate', '{:.1f}'), ratio('bulk_rate'))
    row('   store requests per delivery', '', num(c, 'bulk_req', '{:.3f}'))
    row('   bundle bytes per delivery', '',
        num(c, 'bulk_bundle_bytes', '{:,.0f}'))
    row('   upload on request (SIGUSR1), s', '', num(c, 'upload_secs'))
    for tag, what in (('up1', f'after {args.mails} mails'),
                      ('up2', f'after {args.extra} more')):
        for where in ('inbox', 'root'):
            for kind in ('base', 'diff'):
                row(f'   {where} {kind} bytes, {what}', '',
                    fmt_sizes(c.get(f'{tag}_{where}_{kind}')))
        row(f'   index_last_base/diff_bytes, {what}', '',
            f'{c.get(f"{tag}_last_base", "-"):,}/'
            f'{c.get(f"{tag}_last_diff", "-"):,}' if c else '-')
    row('   unmount (final upload + exit), s', '', num(c, 'unmount_secs'))
    row('3. cold login+SELECT+FETCH FLAGS, s', num(a, 'cold_secs', '{:.3f}'),
        num(c, 'cold_secs', '{:.3f}'), ratio('cold_secs'))
    row('   store requests (from mount)', '', num(c, 'cold_req', '{}'))
    row('   bytes read from the store', '', num(c, 'cold_bytes_in', '{:,}'))
    row(f'   warm (median of {args.logins}), s', num(a, 'warm_secs', '{:.3f}'),
        num(c, 'warm_secs', '{:.3f}'), ratio('warm_secs'))
    row('   store requests per warm login', '', num(c, 'warm_req', '{:.1f}'))
    if c:
        print()
        print(f'part 1 requests by kind: {c.get("p1_by_op")}; bases '
              f'{c.get("p1_bases")}, diffs {c.get("p1_diffs")}, mails stored '
              f'{c.get("p1_mails_stored")}, upload passes {c.get("p1_passes")}')
        print(f'filling: bases {c.get("bulk_bases")}, diffs '
              f'{c.get("bulk_diffs")}; after {args.extra} more: bases '
              f'{c.get("extra_bases")}, diffs {c.get("extra_diffs")}, '
              f'{c.get("extra_bundle_bytes", 0):,} bytes')
        print(f'cold login requests by kind: {c.get("cold_by_op")} (of them '
              f'{c.get("cold_req_dovecot_start")} before the login); users '
              f'loaded {c.get("cold_users_loaded")}, mails put back '
              f'{c.get("cold_put_back")}; {BIG_USER} has '
              f'{c.get("up2_mail_objects")} mail objects')
        print(f'warm login requests by kind: {c.get("warm_by_op")}')
        for k in ('log_errors_1', 'log_errors_2'):
            if c.get(k):
                print(f'oboxfs log ({k[-1]}) error lines: {len(c[k])}, first: '
                      + ' | '.join(c[k][:5]))


def main():
    args = parse_args()
    workdir = setup_workdir(args, 'oboxfs-takeover-bench.', args.users + 1)
    p1_users = [user_name(i) for i in range(2, args.users + 2)]
    p1 = make_mails(p1_users, args.warmup + args.deliveries, seed=1,
                    min_size=args.min_size, max_size=args.max_size,
                    tag='p1')
    big = make_mails([BIG_USER], args.mails + args.extra, seed=2,
                     min_size=args.min_size, max_size=args.max_size,
                     tag='big')
    log(f'{len(p1)} + {len(big)} mails, '
        f'{sum(len(m.data) for m in p1 + big) / 1e6:.1f} MB; '
        f'work dir {workdir}')
    swift = None
    results = {}
    try:
        if 'c' in args.modes:
            swift = Swift(os.path.join(workdir, 'swift'), args.s3_port)
            swift.start()
        for mode in args.modes:
            t0 = time.monotonic()
            results[mode] = run_mode(args, mode, workdir, p1[:args.warmup],
                                     p1[args.warmup:], big[:args.mails],
                                     big[args.mails:])
            log(f'mode {mode} done in {time.monotonic() - t0:.0f} s: '
                f'{results[mode]}')
    finally:
        cleanup(args, workdir, swift)
    print_table(args, results)
    return 0


if __name__ == '__main__':
    benchlib.run('takeover-bench', main)
