#!/usr/bin/python3
"""test_dovecot_takeover_killed_on_s3.py: another machine takes over after a
crash (CONTRACT §5, §6), maildir on S3 (local Swift).

Part 1: Dovecot on mount A delivers mails over LMTP, sets flags, creates,
copies into, moves into, renames and deletes folders, expunges; Dovecot
stops, the daemon is asked to upload (SIGUSR1, waited for) and then
SIGKILLed.  Mount B on the same store with an EMPTY cache dir: Dovecot shows
every mail with equal bytes and exactly the uploaded flags and folders.
Part 2: more mails are delivered on B with index uploads disabled, B is
SIGKILLed, mount C with an empty cache dir: the uploaded state plus the new
mails (put back from their objects by the folder rescan).  After a clean
unmount of C, the store holds exactly one object per mail.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 21 .. + 23 (sdbox variant: + 33).
"""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import (_summary, check_folder,  # noqa: E402
                              final_checks, folder_ops, imap_state,
                              main_wrapper, snapshot, store_setup)
from mailtest import (Dovecot, OboxfsMount, Store, TestEnv,  # noqa: E402
                      deliver_parallel, fail, log, make_mails, user_name)

# no upload on B, unless asked (and SIGKILL means it is never asked)
NO_UPLOADS = ['upload_interval=604800', 'upload_deliveries=1000000']


def compare(what, users, want, got):
    for u in users:
        if got[u] != want[u]:
            diff = sorted(f for f in set(want[u]) | set(got[u])
                          if want[u].get(f) != got[u].get(f))
            detail = []
            for f in diff[:3]:
                w, g = want[u].get(f, {}), got[u].get(f, {})
                miss = sorted(set(w) - set(g))[:3]
                extra = sorted(set(g) - set(w))[:3]
                flags = [(m, sorted(w[m][0]), sorted(g[m][0]))
                         for m in set(w) & set(g) if w[m] != g[m]][:3]
                detail.append(f'{f}: missing {miss}, unexpected {extra}, '
                              f'differing (msgid, want, got) {flags}')
            fail(f'{what}: {u} differs in folders {diff}: want '
                 f'{_summary(want[u])}, got {_summary(got[u])}; ' +
                 '; '.join(detail))


def check_bodies(dc, users, state, sent):
    for u in users:
        with dc.imap(u) as c:
            for folder, st in state[u].items():
                check_folder(c, folder, {m: fl for m, (fl, _) in st.items()},
                             sent)


def run(name, fmt, port_offset):
    # a short directory name: Dovecot's unix socket paths must fit
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, 's3')
    store = Store(url)
    users = [user_name(i) for i in range(1, 3)]
    mails = make_mails(users, 32, seed=21, tag=name, max_size=40 * 1024)
    sent = {m.msgid: m for m in mails}
    model = {}
    mp = env.path('mnt')

    # ---- A: deliver, change, upload on request, SIGKILL
    a = OboxfsMount(env, url, mp, env.path('cacheA'), opts)
    dca = Dovecot(env, mp, fmt, rundir=env.path('dcA'))
    try:
        a.start()
        dca.start()
        deliver_parallel(dca.lmtp_port, mails, senders=4)
        for u in users:
            folder_ops(dca, u, model)
        want = imap_state(dca, users)
        log(f'A: state {dict((u, _summary(want[u])) for u in users)}')
        dca.stop()
        dca.check_log()
        s = a.upload_now()
        log(f'A: uploaded: {s["index_bases_stored"]} bases, '
            f'{s["index_diffs_stored"]} diffs stored')
        a.kill()
        a.check()
    finally:
        dca.stop()
        a.stop()

    # ---- B: empty cache dir, the uploaded state; deliver more, SIGKILL
    b = OboxfsMount(env, url, mp, env.path('cacheB'), opts + NO_UPLOADS)
    dcb = Dovecot(env, mp, fmt, rundir=env.path('dcB'))
    more = make_mails(users, 10, seed=22, tag=name + '-B', max_size=40 * 1024)
    try:
        b.start()
        dcb.start()
        got = imap_state(dcb, users)
        compare('B (empty cache) after A was killed', users, want, got)
        check_bodies(dcb, users, got, sent)
        log('B: every mail, flag and folder of the uploaded state: ok')
        s0 = b.stats()
        deliver_parallel(dcb.lmtp_port, more, senders=2)
        for m in more:
            sent[m.msgid] = m
            want[m.user]['INBOX'][m.msgid] = (frozenset(), None)
        dcb.stop()
        dcb.check_log()
        s1 = b.stats()
        for k in ('index_bases_stored', 'index_diffs_stored'):
            if s1[k] != s0[k]:
                fail(f'B: {k} grew from {s0[k]} to {s1[k]} although '
                     'uploads were disabled (upload_interval, '
                     'upload_deliveries)')
        b.kill()
        b.check()
    finally:
        dcb.stop()
        b.stop()

    # ---- C: empty cache dir; the new mails are put back by the rescan
    c = OboxfsMount(env, url, mp, env.path('cacheC'), opts)
    dcc = Dovecot(env, mp, fmt, rundir=env.path('dcC'))
    try:
        c.start()
        dcc.start()
        got = imap_state(dcc, users)
        files, _ = snapshot(mp, fmt)
        put_back = c.stats()['index_mails_put_back']
        log(f'C: index_mails_put_back {put_back}; mail files: ' +
            ', '.join(f'{u} {sum(f.user == u for f in files)}'
                      for u in users))
        for u in users:  # new mails: any flags (\Recent aside), bytes equal
            for mid, (fl, h) in got[u].get('INBOX', {}).items():
                if want[u]['INBOX'].get(mid, (None, 1))[1] is None:
                    want[u]['INBOX'][mid] = (fl, h)
        compare('C (empty cache) after B was killed', users, want, got)
        check_bodies(dcc, users, got, sent)
        if put_back < len(more):
            fail(f'C: index_mails_put_back {put_back}, expected at least '
                 f'{len(more)} (the mails delivered on B)')
        log(f'C: uploaded state + {len(more)} mails delivered on B '
            f'(index_mails_put_back {put_back}): ok')
        final_checks(env, dcc, c, store, fmt)
    finally:
        dcc.stop()
        c.stop()


if __name__ == '__main__':
    main_wrapper('test_dovecot_takeover_killed_on_s3', run, 'maildir', 21)
