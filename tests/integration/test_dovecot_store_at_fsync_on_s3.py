#!/usr/bin/python3
"""test_dovecot_store_at_fsync_on_s3.py: Dovecot's maildir deliveries are
stored when Dovecot fsync()s the mail in tmp/, not inside the rename into
new/ (store_on_fsync, the default; engine/mailfile.c), on S3 (local Swift).

Mount A: 20 LMTP warm-up deliveries to each of 2 users, then 100 more: every
one of them is stored at its fsync (mails_stored_at_fsync grows with
mails_stored, nothing is relocated or stored twice), and once no folder
upload is queued the store requests per delivery are at most 1.1
(CONTRACT §8: the rename that follows costs none).  An IMAP SELECT moves
INBOX's mails to cur/.  Then 15 more deliveries per user and A is SIGKILLed
with some of them in no bundle.  Mount B on the same store with an EMPTY
cache dir: every acknowledged mail is there, with its bytes (those in no
bundle are put back from their objects, whose path metadata is tmp/: into
new/), and nothing else.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 60 .. + 62.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import folder_state, main_wrapper, store_setup  # noqa: E402
from mailtest import (Dovecot, Imap, OboxfsMount, TestEnv,  # noqa: E402
                      check_delivered, deliver_parallel, fail, log,
                      make_mails, request_counts, user_name)

WARMUP = 20  # per user
STREAM = 100  # in all
LAST = 15  # per user, delivered before the SIGKILL
MAX_PER_DELIVERY = 1.1


def grew(before, after, name):
    return after.get(name, 0) - before.get(name, 0)


def check_stream(mnt, before, after, n):
    used = request_counts(before, after)
    total = sum(used.values())
    per = total / n
    stored = grew(before, after, 'mails_stored')
    at_fsync = grew(before, after, 'mails_stored_at_fsync')
    log(f'FIGURE {n} deliveries: {stored} mails stored, {at_fsync} at their '
        f'fsync, {grew(before, after, "mails_relocated")} relocated; '
        f'{total} store requests = {per:.3f} per delivery '
        f'({", ".join(f"{k[9:]} {v}" for k, v in sorted(used.items()))})')
    if stored != n or at_fsync != n:
        fail(f'{n} deliveries: mails_stored grew by {stored}, '
             f'mails_stored_at_fsync by {at_fsync}; expected {n} each')
    for name in ('mails_relocated', 'mails_unnamed_discarded'):
        if grew(before, after, name) != 0:
            fail(f'{name} grew by {grew(before, after, name)}')
    if per > MAX_PER_DELIVERY:
        fail(f'{per:.3f} store requests per delivery, more than '
             f'{MAX_PER_DELIVERY}')


def check_users(what, dc, users, sent):
    """Each user's INBOX holds exactly the user's sent (acknowledged)
    mails, each read back equal to what was sent."""
    for u in users:
        with Imap(dc.imap_port, u) as c:
            got = folder_state(c, 'INBOX')
        want = {m for m, mail in sent.items() if mail.user == u}
        missing = sorted(want - set(got))
        extra = sorted(set(got) - want)
        if missing or extra:
            fail(f'{what}: {u}: {len(missing)} of {len(want)} acknowledged '
                 f'mails missing (e.g. {missing[:3]}), unexpected '
                 f'{extra[:3]}')
        for mid, (_, body) in got.items():
            check_delivered(body, sent[mid], f'{what} {u}')
    log(f'{what}: every acknowledged mail is there, intact')


def run(name, fmt, port_offset):
    # a short directory name: Dovecot's unix socket paths must fit
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, 's3')
    users = [user_name(i) for i in range(1, 3)]
    warm = make_mails(users, WARMUP * len(users), seed=61, tag=name,
                      max_size=16 * 1024)
    stream = make_mails(users, STREAM, seed=62, tag=name + '-s',
                        max_size=16 * 1024)
    last = make_mails(users, LAST * len(users), seed=63, tag=name + '-l',
                      max_size=16 * 1024)
    sent = {m.msgid: m for m in warm + stream + last}
    mp = env.path('mnt')

    # ---- A: deliveries stored at fsync, then SIGKILL
    a = OboxfsMount(env, url, mp, env.path('cacheA'), opts)
    dca = Dovecot(env, mp, fmt, rundir=env.path('dcA'))
    try:
        a.start()
        dca.start()
        deliver_parallel(dca.lmtp_port, warm, senders=2)
        before = a.wait_uploads_idle()
        t = deliver_parallel(dca.lmtp_port, stream, senders=4)
        after = a.wait_uploads_idle()
        log(f'{len(stream)} deliveries in {t:.1f} s')
        check_stream(a, before, after, len(stream))
        for u in users:
            with Imap(dca.imap_port, u) as c:
                c.select('INBOX')  # new/ -> cur/: no request
        s = a.stats()
        if grew(after, s, 'requests_put') != 0:
            fail(f'SELECT (new/ -> cur/) cost '
                 f'{grew(after, s, "requests_put")} PUTs')
        deliver_parallel(dca.lmtp_port, last, senders=2)
        s = a.stats()
        log(f'A: {s.get("mails_stored_at_fsync")} mails stored at fsync; '
            'SIGKILL')
        dca.stop()
    finally:
        a.kill()

    # ---- B: an empty cache dir
    b = OboxfsMount(env, url, mp, env.path('cacheB'), opts)
    dcb = Dovecot(env, mp, fmt, rundir=env.path('dcB'))
    with b:
        with dcb:
            check_users('B (empty cache after A was killed)', dcb, users,
                        sent)
            s = b.stats()
            put_back = s.get('index_mails_put_back', 0)
            log(f'B: {put_back} mails put back from their objects')
            if put_back == 0:
                fail('B put back no mail: the last deliveries were all in '
                     'bundles, the tmp/ put-back rule went untested')
            dcb.check_log()
        b.check()
    dca.check_log()


if __name__ == '__main__':
    main_wrapper('test_dovecot_store_at_fsync_on_s3', run, 'maildir', 60)
