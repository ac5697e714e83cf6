#!/usr/bin/python3
"""test_dovecot_lazy_stubs.py: a cold load of an INBOX with more stubs than
engine/lazydir.h's threshold in new/ (then in cur/) writes that directory
as a lazy table: Dovecot logs in and fetches every flag without it being
materialized, body fetches of new/ mails create only their stubs, a
delivery into it makes nothing, the move to cur/, flag changes and an
expunge materialize it whole first; a
takeover on a fresh cache (cur/ lazy), a remount on the same cache and a
remount after SIGKILL of the daemon (the table kept, not reloaded), a
last expunge and another takeover all show exactly the expected mails,
bodies and flags.  Dovecot reads new/ and cur/ at the first body fetch
of an IMAP session (its dovecot-uidlist names lack the ":2,<flags>" part,
and a mail is first looked for in cur/): that readdir is served from the
table, and only the mails opened get stubs.  file:// store.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 63 .. + 65."""
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402
from dovecot_scenario import folder_state, sha, store_setup  # noqa: E402
from mailtest import (Dovecot, Imap, OboxfsMount, TestEnv,  # noqa: E402
                      deliver_parallel, fail, log, make_mails, user_name)

NAME = 'test_dovecot_lazy_stubs'
MAILS = 320		# above the threshold (256)
USER = user_name(1)


def state(dc):
    """{msgid: (flags, sha of the body)} of the INBOX (every body read)"""
    with Imap(dc.imap_port, USER) as c:
        return {m: (fl, sha(b)) for m, (fl, b) in
                folder_state(c, 'INBOX').items()}


def flags_only(dc):
    """sorted flag sets of the INBOX, from FLAGS alone (no body read)"""
    with Imap(dc.imap_port, USER) as c:
        n = c.select('INBOX', readonly=True)
        got = c.fetch_flags('1:*')
    if n != len(got):
        fail(f'SELECT said {n} mails, FETCH gave {len(got)}')
    return sorted(tuple(sorted(f - {'\\Recent'})) for f in got.values())


def want_flags(want):
    return sorted(tuple(sorted(set(fl) - {'\\Recent'}))
                  for fl, _ in want.values())


def lazy(mnt):
    s = mnt.stats()
    return {k[len('index_lazy_'):]: s.get(k, 0) for k in
            ('index_lazy_tables_written', 'index_lazy_stubs_made',
             'index_lazy_dirs_expanded', 'index_lazy_tables_bad')}


def files_in(cache, sub):
    path = os.path.join(cache, 'meta', USER, 'Maildir', sub)
    return len(os.listdir(path))


def compare(what, got, want):
    if got != want:
        gone = sorted(set(want) - set(got))[:5]
        new = sorted(set(got) - set(want))[:5]
        changed = [m for m in set(got) & set(want) if got[m] != want[m]][:5]
        fail(f'{what}: {len(got)} mails, expected {len(want)}; missing '
             f'{gone}, unexpected {new}, changed {changed}')
    log(f'{what}: {len(got)} mails, bodies and flags as expected')


def run(name):
    env = TestEnv(name, 63)
    env.fresh_dir()
    url, opts = store_setup(env, 'file')
    mp = env.path('mnt')
    mails = make_mails([USER], MAILS, seed=63, min_size=300, max_size=3000,
                       tag=name)

    # machine A: deliveries (into new/); a read-only login a second
    # later settles Dovecot's index (new/ not "dirty": no readdir at the
    # next SELECT)
    with OboxfsMount(env, url, mp, env.path('cache-a'), opts):
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc-a')) as dc:
            deliver_parallel(dc.lmtp_port, mails, senders=4)
            time.sleep(2.1)
            want = state(dc)
    if len(want) != MAILS:
        fail(f'machine A: {len(want)} mails, {MAILS} delivered')

    # machine B: a cold load; new/ lazy
    cache_b = env.path('cache-b')
    with OboxfsMount(env, url, mp, cache_b, opts) as mnt:
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc-b')) as dc:
            if flags_only(dc) != want_flags(want):
                fail('cold login: the flags differ from machine A\'s')
            lz = lazy(mnt)
            n = files_in(cache_b, 'new')
            log(f'cold login: {lz}, {n} files in new/')
            if lz['tables_written'] < 1:
                fail(f'the cold load wrote no lazy table: {lz}')
            if lz['dirs_expanded'] != 0 or n > 10:
                fail(f'SELECT + FETCH FLAGS materialized new/: {lz}, {n} '
                     'files on disk')
            with Imap(dc.imap_port, USER) as c:
                c.select('INBOX', readonly=True)
                bodies = c.fetch_bodies('1:20')
            if len(bodies) != 20:
                fail(f'FETCH 1:20 BODY[] gave {len(bodies)} bodies')
            lz = lazy(mnt)
            n = files_in(cache_b, 'new')
            if lz['dirs_expanded'] != 0 or not 20 <= n <= 30 or \
                    lz['stubs_made'] < 20:
                fail(f'20 bodies fetched: {lz}, {n} files in new/')
            # every body, by name: still no readdir
            compare('machine B, cold', state(dc), want)
            lz = lazy(mnt)
            if lz['dirs_expanded'] != 0:
                fail(f'reading every body materialized new/: {lz}')
            # a delivery into the lazy new/ adds a name: nothing made
            extra = make_mails([USER], 1, seed=64, tag=name + '-x')
            deliver_parallel(dc.lmtp_port, extra, senders=1)
            lz = lazy(mnt)
            if lz['dirs_expanded'] != 0:
                fail(f'a delivery materialized new/: {lz}')
            want = state(dc)
            if len(want) != MAILS + 1:
                fail(f'after a delivery: {len(want)} mails')
            # a read-write SELECT moves new/ to cur/ (renames out of the
            # lazy new/: materialized first), then flags and an expunge
            with Imap(dc.imap_port, USER) as c:
                c.select('INBOX')
                uids = c.uids()
                c.store(f'{uids[0]}:{uids[9]}', '+FLAGS', '\\Seen')
                c.store(f'{uids[4]}:{uids[6]}', '+FLAGS', '\\Flagged')
                c.store(str(uids[1]), '+FLAGS', '\\Deleted')
                c.store(str(uids[2]), '+FLAGS', '\\Deleted')
                c.ok('expunge')
            lz = lazy(mnt)
            if lz['dirs_expanded'] < 1:
                fail(f'renames out of a lazy new/ did not materialize it: '
                     f'{lz}')
            time.sleep(2.1)
            want = state(dc)
            if len(want) != MAILS - 1:
                fail(f'after expunging 2: {len(want)} mails')
            n = files_in(cache_b, 'cur') + files_in(cache_b, 'new')
            if n != MAILS - 1:
                fail(f'{n} mail files after the expunge, {MAILS - 1} '
                     'expected')
            if want_flags(want).count(('\\Seen',)) != 5:
                fail(f'flags: {want_flags(want)[-12:]}')

    # machine C: a takeover on a fresh cache; then SIGKILL with the table
    # still there, and a remount on that cache keeps and honours it
    cache_c = env.path('cache-c')
    mnt = OboxfsMount(env, url, mp, cache_c, opts)
    dc = Dovecot(env, mp, 'maildir', rundir=env.path('dc-c'))
    try:
        mnt.start()
        dc.start()
        if flags_only(dc) != want_flags(want):
            fail('takeover: the flags differ')
        if lazy(mnt)['dirs_expanded'] != 0 or files_in(cache_c, 'cur') > 10:
            fail(f'takeover: cur/ materialized: {lazy(mnt)}')
        # a clean remount on the same cache: the table is used again
        dc.stop()
        mnt.stop()
        mnt.start()
        dc.start()
        if flags_only(dc) != want_flags(want):
            fail('remount on the same cache: the flags differ')
        s = mnt.stats()
        if s.get('index_users_loaded', 0) != 0 or \
                s['index_lazy_dirs_expanded'] != 0:
            fail(f'remount on the same cache: the user was loaded again or '
                 f'cur/ materialized: {lazy(mnt)}')
        mnt.upload_now()	# nothing left dirty: the kill keeps the tree
        dc.stop()
        mnt.kill()
        if not os.listdir(os.path.join(cache_c, 'lazy')):
            fail('the lazy table is gone after SIGKILL')
        mnt.start()
        dc.start()
        s0 = mnt.stats()
        compare('machine C, after SIGKILL', state(dc), want)
        s1 = mnt.stats()
        if s1.get('index_users_loaded', 0) != 0:
            fail('the user was loaded again after the SIGKILL: the kept '
                 'tree (and its table) was not used')
        if s1['index_lazy_stubs_made'] - s0['index_lazy_stubs_made'] < \
                MAILS - 10:
            fail(f'after SIGKILL: bodies read without stubs made from the '
                 f'table? {lazy(mnt)}')
        # a flag change after the restart: materialized, nothing back
        with Imap(dc.imap_port, USER) as c:
            c.select('INBOX')
            uids = c.uids()
            c.store(str(uids[0]), '+FLAGS', '\\Deleted')
            c.ok('expunge')
        want = state(dc)
        if len(want) != MAILS - 2:
            fail(f'after expunging a third: {len(want)} mails')
        dc.stop()
        dc.check_log()
        mnt.stop()
        mnt.start()
        dc.start()
        compare('machine C, remounted after the expunge', state(dc), want)
        dc.stop()
        dc.check_log()
    finally:
        dc.stop()
        mnt.stop()
    mnt.check()

    # another machine: a takeover of what C left
    with OboxfsMount(env, url, mp, env.path('cache-d'), opts) as mnt:
        with Dovecot(env, mp, 'maildir', rundir=env.path('dc-d')) as dc:
            compare('takeover after machine C', state(dc), want)
            if lazy(mnt)['tables_written'] < 1:
                fail('the second takeover wrote no lazy table')


dovecot_scenario.main_wrapper(NAME, run)
