#!/usr/bin/python3
"""test_dovecot_few_descriptors.py: the daemon holds no file descriptor per
inode the kernel knows (issue: a folder of 17,000 mails exhausted them).

The daemon runs with an open-files limit of 256 (soft and hard) and without
CAP_SYS_RESOURCE, so it cannot raise it.  A stock Dovecot (maildir) on the
mount receives 3,000 LMTP deliveries into one INBOX, then an IMAP client
reads every mail back (every mail file is looked up: the kernel knows
thousands of inodes at once).  Required: every delivery acknowledged, every
mail read back with its bytes, the daemon never near its limit (its open
descriptors are sampled throughout), no "Too many open files" (EMFILE) in
its log or Dovecot's, and after an unmount a fresh mount on an empty cache
shows the same mails.  Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 48 .. + 50.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import (final_checks, main_wrapper,  # noqa: E402
                              store_setup)
from mailtest import (Dovecot, FdSampler, OboxfsMount, Store,  # noqa: E402
                      TestEnv, deliver_parallel, fail, log, make_mails,
                      nofile_wrapper, user_name)

NOFILE = 256
MAILS = 3000


def daemon_limit(pid):
    with open(f'/proc/{pid}/limits') as f:
        for line in f:
            if line.startswith('Max open files'):
                return [int(x) for x in line.split()[3:5]]
    fail(f'no open-files limit in /proc/{pid}/limits')


def check_no_emfile(*paths):
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8', 'replace')
        bad = [ln for ln in text.splitlines()
               if 'Too many open files' in ln or 'EMFILE' in ln]
        if bad:
            fail(f'{path}: {len(bad)} EMFILE lines, e.g. {bad[0]}')


def read_all(dc, user, mails):
    with dc.imap(user) as c:
        n = c.select('INBOX')
        if n != len(mails):
            fail(f'INBOX has {n} mails, expected {len(mails)}')
        bodies = c.fetch_bodies()
    if len(bodies) != len(mails):
        fail(f'FETCH gave {len(bodies)} bodies of {len(mails)}')
    # every Message-ID delivered comes back once, with its body (Dovecot
    # adds trace headers in front)
    want = {m.msgid: m for m in mails}
    seen = set()
    for body in bodies.values():
        msgid = next((ln.split(b':', 1)[1].strip().decode()
                      for ln in body.split(b'\r\n')
                      if ln.lower().startswith(b'message-id:')), None)
        m = want.get(msgid)
        if m is None or msgid in seen:
            fail(f'FETCH gave an unknown or repeated mail {msgid}')
        seen.add(msgid)
        if not body.endswith(m.data.split(b'\r\n\r\n', 1)[1]):
            fail(f'mail {msgid} came back with other bytes')
    return bodies


def run(name, port_offset):
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, 'file')
    user = user_name(1)
    mails = make_mails([user], MAILS, seed=48, tag=name, min_size=512,
                       max_size=2048)
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache'), opts,
                     wrapper=nofile_wrapper(NOFILE)) as mnt:
        soft, hard = daemon_limit(mnt.proc.pid)
        if (soft, hard) != (NOFILE, NOFILE):
            fail(f'the daemon runs with open-files limits {soft}/{hard}, '
                 f'not {NOFILE}/{NOFILE}: the test would prove nothing')
        with Dovecot(env, mnt.mountpoint, 'maildir',
                     rundir=env.path('dc')) as dc:
            with FdSampler(mnt.proc.pid) as fds:
                t = deliver_parallel(dc.lmtp_port, mails, senders=4)
                log(f'FIGURE {len(mails)} deliveries in {t:.1f} s')
                first = read_all(dc, user, mails)
                # and again, every mail known to the kernel at once
                again = read_all(dc, user, mails)
            if first != again:
                fail('two FETCHes of the INBOX gave different bodies')
            log(f'FIGURE the daemon used at most {fds.peak} descriptors '
                f'(limit {NOFILE}) with {len(mails)} mails in one folder')
            if fds.peak >= NOFILE - 16:
                fail(f'the daemon came within 16 descriptors of its limit '
                     f'({fds.peak} of {NOFILE})')
            final_checks(env, dc, mnt, Store(url), 'maildir')
            check_no_emfile(mnt.log_path, dc.log_path)
    # a fresh machine sees the same mails
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache2'), opts,
                     wrapper=nofile_wrapper(NOFILE)) as mnt:
        with Dovecot(env, mnt.mountpoint, 'maildir',
                     rundir=env.path('dc2')) as dc:
            fresh = read_all(dc, user, mails)
            if sorted(fresh.values()) != sorted(first.values()):
                fail('a fresh cache shows other mail bodies than before')
            log(f'a fresh cache shows all {len(fresh)} mails')
            final_checks(env, dc, mnt, Store(url), 'maildir')


if __name__ == '__main__':
    main_wrapper('test_dovecot_few_descriptors', run, 48)
