#!/usr/bin/python3
"""descriptors-bench.py: how many files the daemon serves under an
open-files limit it cannot raise (default 20,000; no CAP_SYS_RESOURCE).

Two workloads on a file:// store, each on a fresh mount:
  folder  stock Dovecot (maildir): --mails LMTP deliveries into ONE INBOX
          (default 100,000) from --senders sessions, the rate printed per
          tenth; then every mail file is stat()ed through the mount, so the
          kernel knows all of them at once;
  files   --files empty files (default 1,000,000) in a user's index tree,
          1,000 per directory, made directly in the cache directory before
          the mount, then looked up (stat()) through the mount.
For each: the daemon's peak open descriptors (sampled every 50 ms), its
RSS at the end, bytes per known file, the elapsed times, and whether any
operation failed (EMFILE or anything else).  Run by hand as root; see
bench/README.md.
"""
import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402 - also puts tests/integration on the path
from benchlib import TOP, cleanup, proc_rss, setup_workdir  # noqa: E402
from mailtest import (Dovecot, FdSampler, OboxfsMount, TestEnv,  # noqa: E402
                      deliver_parallel, fail, log, make_mails,
                      nofile_wrapper, user_name)

USER = user_name(1)  # a user the test Dovecot knows


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_common_args(ap)
    ap.add_argument('--workloads', default='folder,files')
    ap.add_argument('--mails', type=int, default=100000)
    ap.add_argument('--files', type=int, default=1000000)
    ap.add_argument('--nofile', type=int, default=20000,
                    help="the daemon's open-files limit (soft and hard)")
    ap.add_argument('--senders', type=int, default=16, help='LMTP sessions')
    ap.add_argument('--port', type=int, default=19660,
                    help='Dovecot ports PORT..PORT+2')
    a = ap.parse_args()
    a.workloads = a.workloads.split(',')
    if set(a.workloads) - {'folder', 'files'}:
        ap.error('--workloads takes folder and/or files')
    if min(a.mails, a.files, a.nofile, a.senders) < 1:
        ap.error('counts must be positive')
    return a


def stat_tree(top, progress_every):
    """lstat() every entry below top; returns (files, errors, seconds)."""
    files = errors = 0
    t0 = time.monotonic()
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            it = list(os.scandir(d))
        except OSError as e:
            errors += 1
            log(f'scandir({d}): {e}')
            continue
        for ent in it:
            try:
                st = ent.stat(follow_symlinks=False)
            except OSError as e:
                errors += 1
                if errors <= 5:
                    log(f'stat({ent.path}): {e}')
                continue
            if (st.st_mode & 0o170000) == 0o040000:
                stack.append(ent.path)
            else:
                files += 1
                if files % progress_every == 0:
                    log(f'  {files} files looked up '
                        f'({files / (time.monotonic() - t0):.0f}/s)')
    return files, errors, time.monotonic() - t0


def report(name, mnt, sampler, known, errors, extra):
    pid = mnt.proc.pid
    size = proc_rss(pid)
    print(f'{name}: {known} files known to the kernel, {errors} failed '
          f'operations; daemon peak {sampler.peak} descriptors of '
          f'{mnt.nofile}; RSS {size / 1e6:.1f} MB '
          f'({size / max(known, 1):.0f} B per known file); {extra}',
          flush=True)


def folder(args, env):
    os.makedirs(env.path('store'))
    url = 'file://' + env.path('store')
    mails = make_mails([USER], args.mails, seed=60, tag='fdbench',
                       min_size=1024, max_size=2048)
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache'),
                     wrapper=nofile_wrapper(args.nofile)) as mnt:
        mnt.nofile = args.nofile
        with Dovecot(env, mnt.mountpoint, 'maildir',
                     rundir=env.path('dc')) as dc:
            with FdSampler(mnt.proc.pid) as s:
                step = max(len(mails) // 10, 1)
                total = 0.0
                rates = []
                for i in range(0, len(mails), step):
                    part = mails[i:i + step]
                    t = deliver_parallel(dc.lmtp_port, part,
                                         senders=args.senders)
                    total += t
                    rates.append(len(part) / t)
                    log(f'  {i + len(part)} of {len(mails)} delivered: '
                        f'{len(part) / t:.0f}/s for this tenth, '
                        f'{s.peak} descriptors at most so far')
                known, errors, t_stat = stat_tree(
                    os.path.join(mnt.mountpoint, USER),
                    max(len(mails) // 10, 1))
            report('folder', mnt, s, known, errors,
                   f'{len(mails)} deliveries in {total:.0f} s '
                   f'(first tenth {rates[0]:.0f}/s, last {rates[-1]:.0f}/s), '
                   f'stat of every file {t_stat:.1f} s')
            if known < len(mails):
                fail(f'only {known} mail files of {len(mails)} found')
            dc.stop()
            dc.check_log()


def files(args, env):
    os.makedirs(env.path('store'))
    url = 'file://' + env.path('store')
    per_dir = 1000
    base = env.path('cache', 'meta', USER, 'idx')
    t0 = time.monotonic()
    for i in range(0, args.files, per_dir):
        d = os.path.join(base, f'd{i // per_dir:05d}')
        os.makedirs(d)
        for j in range(min(per_dir, args.files - i)):
            os.close(os.open(os.path.join(d, f'f{j:04d}'),
                             os.O_CREAT | os.O_WRONLY, 0o600))
        if (i + per_dir) % max(args.files // 10, per_dir) == 0:
            log(f'  {i + per_dir} files made in the cache directory')
    log(f'{args.files} files made in {time.monotonic() - t0:.0f} s')
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache'),
                     ['upload_interval=604800'],
                     wrapper=nofile_wrapper(args.nofile)) as mnt:
        mnt.nofile = args.nofile
        with FdSampler(mnt.proc.pid) as s:
            known, errors, t_stat = stat_tree(
                os.path.join(mnt.mountpoint, USER),
                max(args.files // 10, 1))
        report('files', mnt, s, known, errors,
               f'looked up in {t_stat:.0f} s ({known / t_stat:.0f}/s)')
        if known < args.files:
            fail(f'only {known} files of {args.files} found')
    # the metacache holds the files: the cache directory goes with the
    # work directory


def main():
    args = parse_args()
    workdir = setup_workdir(args, 'oboxfs-fdbench-', 1)
    try:
        for w in args.workloads:
            env = TestEnv(f'fdbench-{w}', 0)
            env.fresh_dir()
            log(f'== {w}')
            (folder if w == 'folder' else files)(args, env)
    finally:
        cleanup(args, workdir)
    return 0


if __name__ == '__main__':
    benchlib.run('descriptors-bench', main)
