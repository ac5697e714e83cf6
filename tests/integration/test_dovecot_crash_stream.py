#!/usr/bin/python3
"""test_dovecot_crash_stream.py: no acknowledged mail is lost when the daemon
dies in the middle of a stream of deliveries (CONTRACT §5, §6).

4 LMTP senders deliver 200 mails to 4 maildir users on a file:// store; the
daemon is SIGKILLed once about half are acknowledged.  Mount again with the
same cache dir: every acknowledged mail is in its INBOX with equal bytes (a
mail whose delivery was not acknowledged may be there too, intact), no
Message-ID twice, and Dovecot logs no error and nothing about corruption (a
Warning about an index rebuild is fine).  Unmount cleanly, mount with a
FRESH cache dir: the same again; after its clean unmount the store holds
exactly one object per mail.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 24 .. + 26."""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import (final_checks, folder_state,  # noqa: E402
                              main_wrapper, store_setup)
from mailtest import (Dovecot, OboxfsMount, Store, TestEnv,  # noqa: E402
                      check_delivered, deliver_until_failure, fail, log,
                      make_mails, run_threads, user_name)

FMT = 'maildir'
NMAILS = 200
KILL_AT = 100  # acknowledged deliveries before the SIGKILL


def corrupt_lines(dc):
    try:
        with open(dc.log_path, 'rb') as f:
            text = f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return []
    return [ln for ln in text.splitlines() if re.search(r'(?i)corrupt', ln)]


def check_mails(what, dc, users, acked, sent):
    """Every acknowledged mail in its user's INBOX, with equal bytes; any
    other mail there must be one that was sent, intact.  Returns how many
    unacknowledged mails are there."""
    extra = {}

    def one(user):
        with dc.imap(user) as c:
            got = folder_state(c, 'INBOX')
        want = {m.msgid for m in acked if m.user == user}
        missing = sorted(want - set(got))
        if missing:
            fail(f'{what}: {user}: {len(missing)} of {len(want)} '
                 f'acknowledged mails missing, e.g. {missing[:5]}')
        for mid, (_, body) in got.items():
            if mid not in sent or sent[mid].user != user:
                fail(f'{what}: {user}: unexpected mail {mid}')
            check_delivered(body, sent[mid], f'{what} {user}')
        extra[user] = len(set(got) - want)
    run_threads(one, users)
    bad = corrupt_lines(dc)
    if bad:
        fail(f'{what}: dovecot log {dc.log_path} reports corruption:\n    ' +
             '\n    '.join(bad[:20]))
    return sum(extra.values())


def run(name, port_offset):
    # a short directory name: Dovecot's unix socket paths must fit
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, 'file')
    store = Store(url)
    users = [user_name(i) for i in range(1, 5)]
    mails = make_mails(users, NMAILS, seed=24, tag=name, max_size=24 * 1024)
    sent = {m.msgid: m for m in mails}
    mp = env.path('mnt')

    a = OboxfsMount(env, url, mp, env.path('cache'), opts,
                    log_path=env.path('oboxfs-A.log'))
    dca = Dovecot(env, mp, FMT, rundir=env.path('dcA'))
    try:
        a.start()
        dca.start()
        pid = a.proc.pid

        def on_ack(_mail, n):
            if n == KILL_AT:
                a.sigkill()
                log(f'SIGKILLed oboxfs (pid {pid}) after {n} acknowledged '
                    'deliveries')
        acked, unacked = deliver_until_failure(dca.lmtp_port, mails,
                                               senders=4, on_ack=on_ack)
        log(f'{len(acked)} deliveries acknowledged, {len(unacked)} not')
        if len(acked) < KILL_AT or not unacked:
            fail(f'the SIGKILL did not interrupt the deliveries: '
                 f'{len(acked)} acknowledged, {len(unacked)} not')
        dca.stop()  # its log has errors: the mount went away under it
        a.kill()
        a.check()
    finally:
        dca.stop()
        a.stop()

    b = OboxfsMount(env, url, mp, env.path('cache'), opts,
                    log_path=env.path('oboxfs-B.log'))
    dcb = Dovecot(env, mp, FMT, rundir=env.path('dcB'))
    try:
        b.start()
        dcb.start()
        n = check_mails('same cache dir', dcb, users, acked, sent)
        log(f'same cache dir: all {len(acked)} acknowledged mails there '
            f'(+{n} unacknowledged), no corruption reported; '
            f'index_mails_put_back {b.stats()["index_mails_put_back"]}')
        final_checks(env, dcb, b, store, FMT)
    finally:
        dcb.stop()
        b.stop()

    c = OboxfsMount(env, url, mp, env.path('cache-fresh'), opts,
                    log_path=env.path('oboxfs-C.log'))
    dcc = Dovecot(env, mp, FMT, rundir=env.path('dcC'))
    try:
        c.start()
        dcc.start()
        n = check_mails('fresh cache dir', dcc, users, acked, sent)
        log(f'fresh cache dir: all {len(acked)} acknowledged mails there '
            f'(+{n} unacknowledged), no corruption reported; '
            f'index_mails_put_back {c.stats()["index_mails_put_back"]}')
        final_checks(env, dcc, c, store, FMT)
    finally:
        dcc.stop()
        c.stop()


if __name__ == '__main__':
    main_wrapper('test_dovecot_crash_stream', run, 24)
