#!/usr/bin/python3
"""coldlogin-bench.py: the cold login of one big maildir INBOX (scale-bench
part 2) without refilling the store for every run: fill once, then time
cold logins of builds against each other and a plain directory.

  coldlogin-bench.py fill  --dir D --store URL --build-dir B --mails N
      deliver N mails to one user over LMTP, once on an oboxfs mount of
      STORE (its cache is then dropped) and once into D/plain
  coldlogin-bench.py login --dir D --store URL --mails N \
        --build-dir B1 [--build-dir B2 ...] [--rounds 5] [--debug]
      per round, in turn: the plain directory, then each build on an
      empty cache dir: Dovecot restarted, LOGIN + SELECT INBOX (read-only)
      + UID FETCH 1:* (FLAGS) + LOGOUT timed, then a second session's
      first body fetch; the daemon's
      index_load_usecs / index_load_write_usecs; with --debug the daemon
      runs with -d and the FUSE requests of the login are counted.

A store on S3 needs OBOXFS_TEST_S3_* set (e.g. a Swift from
tests/fixtures/swift-start.sh).  Run by hand as root; not a test.
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402 - also puts tests/integration on the path
from benchlib import login_fetch_flags  # noqa: E402
from mailtest import (Dovecot, Imap, OboxfsMount, S3Config,  # noqa: E402
                      TestEnv, deliver_parallel, fail, log, make_mails,
                      user_name)

USER = user_name(1)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', choices=('fill', 'login'))
    ap.add_argument('--dir', required=True)
    ap.add_argument('--store', required=True)
    ap.add_argument('--build-dir', action='append', required=True)
    ap.add_argument('--mails', type=int, default=20000)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--port', type=int, default=28700)
    ap.add_argument('--senders', type=int, default=16)
    ap.add_argument('--debug', action='store_true')
    ap.add_argument('--options', default='', help='extra mount options')
    return ap.parse_args()


def store_opts(env, url):
    if not url.startswith('s3://'):
        return []
    s3 = S3Config()
    cred = s3.write_credentials(env.path('s3.cred'))
    return [f'endpoint={s3.endpoint}', f'region={s3.region}',
            f'credentials={cred}']


def setup(args, build):
    workdir = os.path.abspath(args.dir)
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)
    os.environ.update({'OBOXFS_BUILD_DIR': os.path.abspath(build),
                       'OBOXFS_TEST_DIR': workdir,
                       'OBOXFS_TEST_DOVECOT_PORT': str(args.port),
                       'OBOXFS_DOVECOT_USERS': '2'})


def fill(args):
    setup(args, args.build_dir[0])
    mails = make_mails([USER], args.mails, seed=4, min_size=2048,
                       max_size=4096, tag='b')
    env = TestEnv('plain')
    env.plain = True
    env.fresh_dir()
    mp = env.path('mnt')
    with OboxfsMount(env, None, mp, None):
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc')) as dc:
            secs = deliver_parallel(dc.lmtp_port, mails, senders=args.senders)
            log(f'plain: {len(mails)} mails in {secs:.0f} s')
            time.sleep(2)
            login_fetch_flags(dc, USER, args.mails)
    env = TestEnv('fill')
    env.plain = False
    env.fresh_dir()
    mp = env.path('mnt')
    if args.store.startswith('file://'):
        os.makedirs(args.store[len('file://'):], exist_ok=True)
    with OboxfsMount(env, args.store, mp, env.path('cache'),
                     store_opts(env, args.store)) as mnt:
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc')) as dc:
            secs = deliver_parallel(dc.lmtp_port, mails, senders=args.senders)
            log(f'oboxfs: {len(mails)} mails in {secs:.0f} s')
            # settle: Dovecot's index header marks new/ dirty when it was
            # changed within a second of its last check; a login after
            # that syncs it (no readdir at the next login's quick check)
            mnt.upload_now(timeout=600)
            time.sleep(2)
            login_fetch_flags(dc, USER, args.mails)
        mnt.upload_now(timeout=600)
    subprocess.run(['rm', '-rf', env.path('cache')])


REQ_RE = re.compile(r'opcode: ([A-Z_]+)')


def fetch_body(dc):
    """seconds of a second session's first body fetch (Dovecot reads
    new/ and cur/ for it: its uidlist names lack the ':2,' part)"""
    t0 = time.monotonic()
    with Imap(dc.imap_port, USER) as c:
        c.select('INBOX', readonly=True)
        if len(c.fetch_bodies('1')) != 1:
            fail('FETCH 1 BODY[] gave no body')
    return time.monotonic() - t0


def one_login(args, build, tag, rnd):
    setup(args, build)
    env = TestEnv(f'login-{tag}')
    env.plain = tag == 'plain'
    if env.plain:
        env.dir = os.path.join(os.path.abspath(args.dir), 'plain')
        mp = env.path('mnt')
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc')) as dc:
            res = {'secs': login_fetch_flags(dc, USER, args.mails)}
            res['body_secs'] = fetch_body(dc)
            return res
    env.fresh_dir()
    if args.debug:
        wrapper = env.path('oboxfs-d')
        with open(wrapper, 'w') as f:
            f.write(f'#!/bin/sh\nexec {env.oboxfs} -d "$@"\n')
        os.chmod(wrapper, 0o755)
        env.oboxfs = wrapper
    mp = env.path('mnt')
    opts = store_opts(env, args.store) + \
        [o for o in args.options.split(',') if o]
    res = {}
    with OboxfsMount(env, args.store, mp, env.path('cache'), opts) as mnt:
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc')) as dc:
            log_size = os.path.getsize(mnt.log_path)
            res['secs'] = login_fetch_flags(dc, USER, args.mails)
            if not args.debug:
                res['body_secs'] = fetch_body(dc)
            s = mnt.stats()
            for k in ('index_load_usecs', 'index_load_write_usecs',
                      'index_lazy_tables_written', 'index_lazy_stubs_made',
                      'index_lazy_dirs_expanded'):
                if k in s:
                    res[k] = s[k]
            if args.debug:
                with open(mnt.log_path, 'rb') as f:
                    f.seek(log_size)
                    text = f.read().decode('utf-8', 'replace')
                res['requests'] = dict(collections.Counter(
                    REQ_RE.findall(text)))
    return res


def login(args):
    tags = ['plain'] + [f'b{i}' for i in range(len(args.build_dir))]
    builds = {'plain': args.build_dir[0]}
    builds.update({f'b{i}': b for i, b in enumerate(args.build_dir)})
    out = {t: [] for t in tags}
    for rnd in range(args.rounds):
        for t in tags:
            r = one_login(args, builds[t], t, rnd)
            log(f'round {rnd} {t}: {r}')
            out[t].append(r)
            time.sleep(1)
    plain = statistics.median(r['secs'] for r in out['plain'])
    print(f'cold login of {args.mails} mails, median of {args.rounds}:')
    for t in tags:
        secs = statistics.median(r['secs'] for r in out[t])
        extra = ''
        body = [r['body_secs'] for r in out[t] if 'body_secs' in r]
        if body:
            extra += f'  then a body: {statistics.median(body):.3f} s'
        for k in ('index_load_usecs', 'index_load_write_usecs'):
            vals = [r[k] for r in out[t] if k in r]
            if vals:
                extra += f'  {k} {statistics.median(vals):.0f}'
        print(f'  {t:6} {builds[t] if t != "plain" else "":40} '
              f'{secs:.3f} s  x{secs / plain:.2f}{extra}')
    return 0


def main():
    args = parse_args()
    return fill(args) if args.what == 'fill' else login(args)


if __name__ == '__main__':
    benchlib.run('coldlogin-bench', main)
