#!/usr/bin/python3
"""cache-bench.py: what the mail object cache (cache_size=) gives and costs.

1. hit rate: stock Dovecot (maildir) on oboxfs over a file:// store with
   cache_size=C; mails totalling R x C (--ratios, default 0.5, 2, 10) are
   delivered over LMTP to a few users, then parallel IMAP clients fetch
   random mails' bodies (uniform over the working set, --fetch-passes times
   the number of mails).  Reported: hit rate = hits / (hits + misses) from
   the oboxfs_mailcache_* deltas (all passes and the last one), store GETs
   and cache opens per FETCH, FETCH messages/s, and the same FETCH load on a
   plain local directory (ratio oboxfs / plain).  The store is local, so a
   miss costs little here (a file copy and a checksum, no network).
2. memory: oboxfs with a large cache_size; --entries (100,000) small mails
   are written into USER/Maildir/.FOLDER/tmp/ and renamed into new/ through
   the mount by parallel threads (each rename stores the mail and caches
   it; no Dovecot); the daemon's VmRSS/VmHWM (/proc/PID/status) right after
   the mount, with the entries cached, and after a remount (the cache index
   is rebuilt from the cache dir), with oboxfs_mailcache_memory_bytes.

Run by hand as root (needs /dev/fuse and Dovecot); see bench/README.md.
"""
import argparse
import os
import random
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402 - also puts tests/integration on the path
from benchlib import TOP, Swift, cleanup, delta, setup_workdir  # noqa: E402,F401
from mailtest import (Dovecot, Imap, OboxfsMount, TestEnv, check_delivered,
                      deliver_parallel, fail, log, make_mail, message_id,
                      run_threads, user_name)

HIT = 'oboxfs_mailcache_hits_total'
MISS = 'oboxfs_mailcache_misses_total'


def size_arg(text):
    units = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    t = text.strip().upper().rstrip('B').rstrip('I')
    u = t[-1:] if t[-1:] in units else ''
    try:
        return int(t[:len(t) - len(u)]) * units[u]
    except ValueError:
        raise argparse.ArgumentTypeError(f'bad size {text!r} (e.g. 16M)')


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(ap)
    ap.add_argument('--parts', default='12', help='1 (hit rate), 2 (memory)')
    g = ap.add_argument_group('part 1: hit rate')
    g.add_argument('--cache-size', type=size_arg, default='16M')
    g.add_argument('--ratios', default='0.5,2,10',
                   help='working set / cache_size, comma-separated')
    g.add_argument('--users', type=int, default=4)
    g.add_argument('--senders', type=int, default=8, help='LMTP sessions')
    g.add_argument('--fetchers', type=int, default=4, help='IMAP clients')
    g.add_argument('--fetch-passes', type=int, default=3,
                   help='random FETCHes = passes x mails')
    g.add_argument('--min-size', type=int, default=1024)
    g.add_argument('--max-size', type=int, default=100 * 1024)
    g.add_argument('--no-plain', action='store_true',
                   help='skip the plain-directory runs (no ratio)')
    g.add_argument('--port', type=int, default=19960,
                   help='Dovecot ports PORT..PORT+2')
    g = ap.add_argument_group('part 2: memory')
    g.add_argument('--entries', type=int, default=100000)
    g.add_argument('--entry-size', type=int, default=256)
    g.add_argument('--writers', type=int, default=8)
    g.add_argument('--batch', type=int, default=10000,
                   help='mails per mount (the daemon holds an fd per inode '
                   'the kernel knows; keep it well under RLIMIT_NOFILE)')
    g.add_argument('--big-cache', default='4G', help='cache_size of part 2')
    a = ap.parse_args()
    if not a.parts or set(a.parts) - set('12'):
        ap.error('--parts takes digits from "12"')
    try:
        a.ratios = [float(r) for r in a.ratios.split(',') if r]
    except ValueError:
        ap.error('--ratios: comma-separated numbers')
    if not a.ratios or min(a.ratios) <= 0 or \
            min(a.users, a.senders, a.fetchers, a.fetch_passes, a.entries,
                a.writers, a.batch, a.min_size) < 1 or a.max_size < a.min_size:
        ap.error('counts and sizes must be positive')
    return a


def stats(mnt):
    return mnt.stats()


def proc_mem(pid):
    """(VmRSS, VmHWM) of pid in bytes."""
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmRSS', 'VmHWM'):
                out[k] = int(v.split()[0]) * 1024
    return out['VmRSS'], out['VmHWM']


def rm_tree(path):
    subprocess.run(['rm', '-rf', '--one-file-system', path])


# ------------------------------------------------------------ part 1

def working_set(args, users, nbytes, seed):
    """Mails of min..max size, round-robin over users, until nbytes."""
    rng = random.Random(seed)
    mails, total = [], 0
    while total < nbytes:
        i = len(mails)
        m = make_mail(users[i % len(users)],
                      rng.randint(args.min_size, args.max_size), rng,
                      eightbit=(i % 3 == 2), tag='cache')
        mails.append(m)
        total += len(m.data)
    return mails, total


def random_fetches(args, dc, users, mails, mnt):
    """passes x len(mails) FETCHes of random mails (uniform) by `fetchers`
    clients, each with a session per user; checks every body.  Returns
    (seconds, [stats after each pass], stats before)."""
    by_id = {m.msgid: m for m in mails}
    per_user = {u: sum(1 for m in mails if m.user == u) for u in users}
    sessions = []  # per fetcher: {user: (Imap, [uids])}

    def login(_):
        mine = {}
        for u in users:
            c = Imap(dc.imap_port, u)
            c.select('INBOX', readonly=True)
            uids = c.uids()
            if len(uids) != per_user[u]:
                fail(f'{u}: INBOX has {len(uids)} mails, '
                     f'{per_user[u]} were delivered')
            mine[u] = (c, uids)
        sessions.append(mine)
    run_threads(login, range(args.fetchers))
    rng = random.Random(7)
    all_picks = [(u, i) for u in users for i in range(per_user[u])]
    seconds = 0.0
    snaps = []
    before = stats(mnt) if mnt else {}

    def work(job):
        sess, picks = job
        for u, i in picks:
            c, uids = sess[u]
            bodies = c.fetch_bodies(str(uids[i]))
            if len(bodies) != 1:
                fail(f'{u} UID {uids[i]}: FETCH returned {len(bodies)} mails')
            body = next(iter(bodies.values()))
            m = by_id.get(message_id(body))
            if m is None:
                fail(f'{u} UID {uids[i]}: unknown Message-ID')
            check_delivered(body, m, 'FETCH')
    try:
        for _ in range(args.fetch_passes):
            picks = [rng.choice(all_picks) for _ in range(len(mails))]
            jobs = [(sessions[k], picks[k::args.fetchers])
                    for k in range(args.fetchers)]
            t0 = time.monotonic()
            run_threads(work, jobs)
            seconds += time.monotonic() - t0
            snaps.append(stats(mnt) if mnt else {})
    finally:
        for sess in sessions:
            for c, _ in sess.values():
                c.close()
    return seconds, snaps, before


def hit_rate_run(args, mode, ratio, mails):
    env = TestEnv(f'cache-{mode}-{ratio:g}')
    env.plain = (mode == 'a')
    env.fresh_dir()
    url = None if env.plain else 'file://' + env.path('store')
    if url:
        os.makedirs(env.path('store'))
    opts = [f'cache_size={args.cache_size}']
    users = sorted({m.user for m in mails})
    res = {}
    try:
        with OboxfsMount(env, url, env.path('mnt'), env.path('cache'),
                         opts) as mnt:
            m = None if env.plain else mnt
            with Dovecot(env, mnt.mountpoint, 'maildir') as dc:
                t = deliver_parallel(dc.lmtp_port, mails, senders=args.senders)
                res['lmtp'] = len(mails) / t
                if m:
                    m.wait_uploads_idle()
                secs, snaps, before = random_fetches(args, dc, users, mails, m)
                n = len(mails) * args.fetch_passes
                res['fetch'] = n / secs
                if m:
                    after = snaps[-1]
                    h, x = delta(before, after, HIT), delta(before, after, MISS)
                    res['hit'] = h / max(h + x, 1)
                    prev = snaps[-2] if len(snaps) > 1 else before
                    h2, x2 = delta(prev, after, HIT), delta(prev, after, MISS)
                    res['hit_last'] = h2 / max(h2 + x2, 1)
                    res['opens'] = (h + x) / n
                    res['gets'] = delta(before, after, 'requests_get') / n
                    res['evict'] = delta(before, after,
                                         'oboxfs_mailcache_evictions_total')
                    res['cached_mb'] = after['oboxfs_mailcache_bytes'] / 1e6
                    res['errors'] = delta(before, after,
                                          'oboxfs_mailcache_fetch_errors_total')
    finally:
        rm_tree(env.dir)
    return res


def part1(args):
    C = args.cache_size
    users = [user_name(i) for i in range(1, args.users + 1)]
    rows = []
    for ratio in args.ratios:
        mails, total = working_set(args, users, int(ratio * C), seed=1)
        log(f'ratio {ratio:g}: {len(mails)} mails, {total / 1e6:.1f} MB '
            f'(cache_size {C / 1e6:.1f} MB)')
        row = {'ratio': ratio, 'mails': len(mails), 'mb': total / 1e6}
        for mode in ('b',) if args.no_plain else ('a', 'b'):
            r = hit_rate_run(args, mode, ratio, mails)
            log(f'ratio {ratio:g} {"plain" if mode == "a" else "oboxfs"}: ' +
                ', '.join(f'{k} {v:.3f}' for k, v in r.items()))
            row[mode] = r
        rows.append(row)
    return rows


def print_part1(args, rows):
    print()
    print(f'1. Mail cache hit rate: Dovecot maildir, oboxfs over file:// with '
          f'cache_size={args.cache_size >> 20}M; mails of {args.min_size}-'
          f'{args.max_size} bytes to {args.users} users; {args.fetch_passes} '
          f'x mails random single-mail FETCHes (uniform) by {args.fetchers} '
          'IMAP clients')
    hdr = ('set/cache', 'mails', 'MB', 'hit rate', 'last pass', 'LRU C/W',
           'opens/FETCH', 'GETs/FETCH', 'evictions', 'FETCH/s plain',
           'FETCH/s oboxfs', 'oboxfs/plain')
    print(''.join(f'{h:>15}' for h in hdr))
    for row in rows:
        b, a = row['b'], row.get('a', {})
        ideal = min(1.0, args.cache_size / 1e6 / row['mb'])
        cells = [f'{row["ratio"]:g}x', str(row['mails']), f'{row["mb"]:.1f}',
                 f'{b["hit"]:.3f}', f'{b["hit_last"]:.3f}', f'{ideal:.3f}',
                 f'{b["opens"]:.2f}', f'{b["gets"]:.2f}', str(b['evict']),
                 f'{a["fetch"]:.0f}' if a else '-', f'{b["fetch"]:.0f}',
                 f'{b["fetch"] / a["fetch"]:.2f}' if a else '-']
        print(''.join(f'{c:>15}' for c in cells))
    for row in rows:
        b = row['b']
        print(f'  {row["ratio"]:g}x: LMTP deliveries/s plain '
              f'{row.get("a", {}).get("lmtp", 0):.0f}, oboxfs {b["lmtp"]:.0f}; '
              f'cache bytes at the end {b["cached_mb"]:.1f} MB; '
              f'fetch errors {b["errors"]}')


# ------------------------------------------------------------ part 2

FOLDERS = 5


def mail_bytes(i, size):
    head = (f'From: <sender@example.org>\r\nTo: <user@example.com>\r\n'
            f'Subject: rss {i}\r\nMessage-ID: <rss.{i}@oboxfs.test>\r\n'
            f'\r\n').encode()
    return head + b'x' * max(size - len(head) - 2, 1) + b'\r\n'


def create_mails(args, root, first, count):
    """Mails first..first+count-1 written to tmp/ and renamed into new/ of
    users x FOLDERS folders by args.writers threads; returns seconds."""
    dirs = []
    for u in range(1, args.users + 1):
        for f in range(FOLDERS):
            d = os.path.join(root, user_name(u), 'Maildir', f'.f{f}')
            for sub in ('tmp', 'new', 'cur'):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            dirs.append(d)
    pid = os.getpid()

    def work(k):
        for i in range(first + k, first + count, args.writers):
            d = dirs[i % len(dirs)]
            name = f'1700000000.M{i}P{pid}.bench,S={args.entry_size}'
            tmp = os.path.join(d, 'tmp', name)
            with open(tmp, 'wb') as f:
                f.write(mail_bytes(i, args.entry_size))
            os.rename(tmp, os.path.join(d, 'new', name))
    t0 = time.monotonic()
    run_threads(work, range(args.writers))
    return time.monotonic() - t0


def mem_now(mnt, want_entries):
    """(VmRSS, VmHWM, entries, memory_bytes) of the mounted daemon."""
    os.listdir(mnt.mountpoint)
    time.sleep(1)
    s = stats(mnt)
    if s['oboxfs_mailcache_entries'] < want_entries:
        fail(f'oboxfs_mailcache_entries is {s["oboxfs_mailcache_entries"]}, '
             f'expected {want_entries} (mails_stored {s.get("mails_stored")})')
    return proc_mem(mnt.proc.pid) + (s['oboxfs_mailcache_entries'],
                                     s['oboxfs_mailcache_memory_bytes'])


def part2(args):
    """Mails are written in batches of --batch with a remount after each:
    every file the kernel knows holds an O_PATH fd in the daemon (fs/inode.c)
    and the unmount makes the kernel forget them, so the daemon stays under
    RLIMIT_NOFILE.  The cache (and its index, rebuilt at each start) keeps
    growing across the remounts."""
    env = TestEnv('cache-rss')
    env.plain = False
    env.fresh_dir()
    url = 'file://' + env.path('store')
    os.makedirs(env.path('store'))
    mnt = OboxfsMount(env, url, env.path('mnt'), env.path('cache'),
                      [f'cache_size={args.big_cache}'])
    res = {'series': [], 'written': [], 'write_s': 0.0}
    done = 0
    try:
        while True:
            t0 = time.monotonic()
            with mnt:
                mount_s = time.monotonic() - t0
                m = mem_now(mnt, done)
                if done == 0:
                    res['empty'] = m
                    with open(f'/proc/{mnt.proc.pid}/limits') as f:
                        res['nofile'] = [ln.split()[3:5] for ln in f
                                         if ln.startswith('Max open files')][0]
                else:
                    res['series'].append((done, mount_s) + m)
                    log(f'remount with {done} entries: {mount_s:.1f} s, '
                        f'RSS {m[0] >> 10} KiB')
                if done >= args.entries:
                    res['remount'], res['mount_s'] = m, mount_s
                    break
                n = min(args.batch, args.entries - done)
                secs = create_mails(args, mnt.mountpoint, done, n)
                res['write_s'] += secs
                done += n
                full = mem_now(mnt, done)
                res['written'].append((done, n / secs) + full)
                log(f'{done} mails written ({n / secs:.0f}/s); RSS '
                    f'{full[0] >> 10} KiB')
                if done >= args.entries:
                    res['full'], res['full_inodes'] = full, n
                t0 = time.monotonic()
            res['unmount_s'] = time.monotonic() - t0
        res['log_errors'] = mnt.daemon_log_problems()[1]
    finally:
        mnt.stop()
        rm_tree(env.dir)
    return res


def print_part2(args, res):
    n = args.entries
    print()
    print(f'2. Daemon memory with {n} cached mails of {args.entry_size} bytes '
          f'(cache_size={args.big_cache}; written in batches of {args.batch} '
          f'with a remount after each, at {n / res["write_s"]:.0f} mails/s '
          f'by {args.writers} threads; daemon RLIMIT_NOFILE '
          f'{"/".join(res["nofile"])})')
    print(f'{"":36}{"VmRSS KiB":>12}{"VmHWM KiB":>12}{"entries":>10}'
          f'{"memory_bytes":>14}')
    rows = [('after mount, empty cache', res['empty']),
            (f'all written, last {res["full_inodes"]} known', res['full']),
            ('after remount', res['remount'])]
    for label, (rss, hwm, ent, mem) in rows:
        print(f'{label:36}{rss >> 10:>12}{hwm >> 10:>12}{ent:>10}{mem:>14}')
    e = res['empty'][0]
    print(f'  RSS per entry after the remount (cache index only): '
          f'{(res["remount"][0] - e) / n:.0f} bytes; with the last batch\'s '
          f'inodes still known: {(res["full"][0] - e) / n:.0f} bytes')
    print(f'  oboxfs_mailcache_memory_bytes per entry: '
          f'{res["remount"][3] / max(res["remount"][2], 1):.1f}')
    print('  per batch: N entries; mails/s and VmRSS KiB right after writing '
          'the batch; seconds to remount, VmRSS and VmHWM KiB after it')
    for (done, rate, wrss, _, _, _), (_, secs, rss, hwm, _, _) in zip(
            res['written'], res['series']):
        print(f'    {done:>8} {rate:>8.0f} {wrss >> 10:>8}   {secs:>6.1f} '
              f'{rss >> 10:>8} {hwm >> 10:>8}')
    if res['log_errors']:
        print(f'  oboxfs log: {len(res["log_errors"])} error lines, first: '
              f'{res["log_errors"][0]}')


def main():
    args = parse_args()
    workdir = setup_workdir(args, 'oboxfs-cache-bench.', args.users)
    log(f'work dir {workdir}; load average {os.getloadavg()[0]:.2f}')
    rows = res = None
    try:
        if '1' in args.parts:
            rows = part1(args)
        if '2' in args.parts:
            res = part2(args)
    finally:
        cleanup(args, workdir)
        if rows:
            print_part1(args, rows)
        if res and 'remount' in res and 'full' in res:
            print_part2(args, res)
        print(f'\nload average at the end: {os.getloadavg()[0]:.2f} '
              f'(on {os.cpu_count()} cores)')
    return 0


if __name__ == '__main__':
    benchlib.run('cache-bench', main)
