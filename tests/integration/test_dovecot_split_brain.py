#!/usr/bin/python3
"""test_dovecot_split_brain.py: two machines serving one user at the same
time (CONTRACT §6): mounts A and B of one file:// store, each with its own
cache dir and Dovecot, both take deliveries for user1.  With
split_check_interval=1, requested uploads let each notice the other's
bundles and merge its mails: afterwards Dovecot on A and on B shows every
delivered mail with its bytes, and a third mount with an empty cache dir
does too.  No mail may be lost.  Flags set on both sides to one mail (and
keywords, whose letters differ between the two machines' dovecot-keywords)
are merged: both sides' flags and keywords by name, as IMAP shows them on
A, on B and on the third mount; so are folder subscriptions made on
either side (LSUB), folders created on either side, a folder renamed on
A that B appended a mail to under its old name (the mail is in the
renamed folder) and an empty folder deleted on A (gone).
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 42 .. + 47."""
import fcntl
import glob
import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402
from mailtest import (Dovecot, Imap, OboxfsMount, TestEnv,  # noqa: E402
                      check_delivered, deliver_parallel, fail, log,
                      make_mails, message_id, user_name)

NAME = 'test_dovecot_split_brain'
OPTS = ['split_check_interval=1']


def inbox(dc, user):
    """{message-id: body} of user's INBOX on Dovecot dc."""
    with Imap(dc.imap_port, user) as c:
        c.select('INBOX')
        return {message_id(b): b for b in c.fetch_bodies().values()}


def expect(dc, where, user, sent):
    got = inbox(dc, user)
    missing = sorted(set(sent) - set(got))
    extra = sorted(set(got) - set(sent))
    if missing or extra:
        fail(f'{where}: {len(got)} mails, missing {missing[:5]}, '
             f'unexpected {extra[:5]}')
    for mid, body in got.items():
        check_delivered(body, sent[mid], where)
    log(f'{where}: all {len(got)} mails, bytes equal')


# flags set on A and on B, by mail (first[i]): IMAP flags / keywords
FLAGS_A = {0: '\\Flagged $Label1 Junk'}
FLAGS_B = {0: '\\Answered $Forwarded', 1: 'Other'}


def uid_of(c, msgid):
    uids = [u for u, b in c.fetch_bodies().items() if message_id(b) == msgid]
    if len(uids) != 1:
        fail(f'{msgid}: {len(uids)} mails with that Message-ID')
    return uids[0]


def set_flags(dc, user, mails, flags):
    with Imap(dc.imap_port, user) as c:
        c.select('INBOX')
        for i, f in flags.items():
            c.store(str(uid_of(c, mails[i].msgid)), '+FLAGS', f)


def expect_flags(dc, where, user, mails):
    """Each mail of FLAGS_A / FLAGS_B has both sides' flags."""
    with Imap(dc.imap_port, user) as c:
        c.select('INBOX')
        got = c.fetch_flags()
        for i in sorted(set(FLAGS_A) | set(FLAGS_B)):
            want = set((FLAGS_A.get(i, '') + ' ' +
                        FLAGS_B.get(i, '')).split())
            have = got.get(uid_of(c, mails[i].msgid), set())
            if not want <= have:
                fail(f'{where}: mail {i} has flags {sorted(have)}, '
                     f'missing {sorted(want - have)}')
    log(f'{where}: both sides\' flags and keywords')


SUBS_A, SUBS_B = ['Archive', 'Shared'], ['Projects', 'Shared']


def subscribe(dc, user, names):
    with Imap(dc.imap_port, user) as c:
        for n in names:
            c.ok('subscribe', n)


def expect_subscriptions(dc, where, user):
    with Imap(dc.imap_port, user) as c:
        got = set()
        for line in c.ok('lsub', '""', '*'):
            m = re.match(rb'\([^)]*\) (?:"[^"]*"|NIL) "?([^"]*)"?$',
                         line or b'')
            if m:
                got.add(m.group(1).decode())
    want = set(SUBS_A) | set(SUBS_B)
    if not want <= got:
        fail(f'{where}: subscribed {sorted(got)}, missing '
             f'{sorted(want - got)}')
    log(f'{where}: both sides\' subscriptions')


# folders: made on A before the split ("Old" with a mail: a folder
# GUID; "Gone" empty), then during it: A renames Old to New and deletes
# Gone, B appends a mail to Old, each creates an empty folder of its own
FOLDER_MAIL_OLD, FOLDER_MAIL_B = 0, 1


def append(dc, user, folder, mail):
    with Imap(dc.imap_port, user) as c:
        c.ok('append', folder, None, None, mail.data)


def folder_ops(dca, dcb, user):
    with Imap(dca.imap_port, user) as c:
        c.ok('rename', 'Old', 'New')
        c.ok('delete', 'Gone')
        c.ok('create', 'MadeOnA')
    with Imap(dcb.imap_port, user) as c:
        c.ok('create', 'MadeOnB')


def expect_folders(dc, where, user, folder_mails):
    """Both sides' new folders, the rename, the deletion; New has the
    mail of before the split and the one B appended to Old."""
    with Imap(dc.imap_port, user) as c:
        got = set(c.folders())
        want = {'New', 'MadeOnA', 'MadeOnB'}
        gone = {'Old', 'Gone'}
        if not want <= got or got & gone:
            fail(f'{where}: folders {sorted(got)}: want {sorted(want)}, '
                 f'not {sorted(gone)}')
        c.select('New')
        have = {message_id(b) for b in c.fetch_bodies().values()}
    want_ids = {m.msgid for m in folder_mails}
    if have != want_ids:
        fail(f'{where}: New has {sorted(have)}, want {sorted(want_ids)}')
    log(f'{where}: both sides\' folders, the rename with the mail '
        f'appended to the old name, the deletion')


def upload(mnt, what):
    s = mnt.upload_now()
    log(f'{what}: uploaded; split brains noticed so far '
        f'{s["index_split_brains"]}, mails merged '
        f'{s["index_split_mails_merged"]}')
    return s


def mount_fds(pid, mountpoint):
    """The descriptors of process pid on files below mountpoint."""
    fds = []
    for fd in glob.glob(f'/proc/{pid}/fd/*'):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(mountpoint + '/'):
            fds.append(target)
    return fds


def children(pid):
    """The pids of pid's children (every thread's)."""
    kids = []
    for f in glob.glob(f'/proc/{pid}/task/*/children'):
        with open(f) as fh:
            kids += [int(k) for k in fh.read().split()]
    return kids


def upload_with_logs_locked(mnt, user, what):
    """sdbox: the merge marks a folder's index for a rebuild by appending
    to its dovecot.index.log through the mount, under the log's lock.
    With every log of user locked here (as a Dovecot appending holds it),
    that append must wait, and it must be made by a child process, not by
    a thread of the daemon: a daemon thread waiting for a request of the
    daemon's own cannot be killed, and a daemon SIGKILLed then never
    exits and hangs its mount (fs/mountappend.c)."""
    logs = glob.glob(os.path.join(glob.escape(mnt.mountpoint), user, '**',
                                  'dovecot.index.log'), recursive=True)
    held = []
    for path in logs:
        fd = os.open(path, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
    result = {}
    t = threading.Thread(target=lambda: result.update(upload(mnt, what)))
    t.start()
    waiter = None
    try:
        deadline = time.monotonic() + 30
        while waiter is None and t.is_alive() and \
                time.monotonic() < deadline:
            own = mount_fds(mnt.proc.pid, mnt.mountpoint)
            if own:
                fail(f'{what}: the daemon itself has {own} open on its '
                     f'own mount')
            for kid in children(mnt.proc.pid):
                if any(f.endswith('/dovecot.index.log')
                       for f in mount_fds(kid, mnt.mountpoint)):
                    waiter = kid
            time.sleep(0.01)
    finally:
        for fd in held:
            os.close(fd)
        t.join()
    if waiter is None:
        fail(f'{what}: no child of the daemon waited for the lock of '
             f'{len(logs)} locked dovecot.index.log files')
    log(f'{what}: the rebuild mark waited for the log\'s lock in child '
        f'{waiter}, the daemon had nothing of its mount open')
    return result


def run(name, fmt='maildir'):
    """fmt sdbox: mails and folders (sdbox flags and subscriptions are not
    checked here: test_dovecot_split_seeded and test_engine_sdbox_flags
    check the flags)."""
    maildir = fmt == 'maildir'
    env = TestEnv(name, 42)
    env_b = TestEnv(name, 45)
    env.fresh_dir()
    url = 'file://' + env.path('store')
    os.makedirs(env.path('store'))
    user = user_name(1)
    first = make_mails([user], 6, seed=21, tag=name + '-a1')
    on_b = make_mails([user], 4, seed=22, tag=name + '-b')
    on_a = make_mails([user], 3, seed=23, tag=name + '-a2')
    folder_mails = make_mails([user], 2, seed=24, tag=name + '-f')
    sent = {m.msgid: m for m in first + on_b + on_a}
    with OboxfsMount(env, url, env.path('mnt-a'), env.path('cache-a'),
                     OPTS) as a, \
            Dovecot(env, a.mountpoint, fmt,
                    rundir=env.path('dovecot-a')) as dca:
        deliver_parallel(dca.lmtp_port, first, senders=2)
        # the folders both sides subscribe to later (Dovecot refuses
        # subscribing to a folder that does not exist)
        with Imap(dca.imap_port, user) as c:
            for n in sorted(set(SUBS_A) | set(SUBS_B)) + ['Old', 'Gone']:
                c.ok('create', n)
        append(dca, user, 'Old', folder_mails[FOLDER_MAIL_OLD])
        upload(a, 'A')
        # B takes the user over while A still serves it
        with OboxfsMount(env_b, url, env.path('mnt-b'), env.path('cache-b'),
                         OPTS) as b, \
                Dovecot(env_b, b.mountpoint, fmt,
                        rundir=env.path('dovecot-b')) as dcb:
            expect(dcb, 'B after the takeover',
                   user, {m.msgid: m for m in first})
            deliver_parallel(dcb.lmtp_port, on_b, senders=2)
            deliver_parallel(dca.lmtp_port, on_a, senders=2)
            # one mail flagged on both sides, keywords with letters that
            # differ between the two machines' dovecot-keywords
            if maildir:
                set_flags(dca, user, first, FLAGS_A)
                set_flags(dcb, user, first, FLAGS_B)
                subscribe(dca, user, SUBS_A)
                subscribe(dcb, user, SUBS_B)
            folder_ops(dca, dcb, user)
            append(dcb, user, 'Old', folder_mails[FOLDER_MAIL_B])
            # each machine checks a root at most once a second
            upload(b, 'B')
            time.sleep(1.1)
            if maildir:
                sa = upload(a, 'A')
            else:
                sa = upload_with_logs_locked(a, user, 'A')
            if sa['index_split_brains'] < 1:
                fail('A did not notice the bundles B wrote')
            time.sleep(1.1)
            upload(a, 'A (the merged base)')
            # B serves the user (a split check runs for users in use)
            with Imap(dcb.imap_port, user) as c:
                c.select('INBOX')
            sb = upload(b, 'B')
            if sb['index_split_brains'] < 1:
                fail('B did not notice the bundles A wrote')
            expect(dca, 'A after the merge', user, sent)
            expect(dcb, 'B after the merge', user, sent)
            if maildir:
                expect_flags(dca, 'A after the merge', user, first)
                expect_flags(dcb, 'B after the merge', user, first)
                expect_subscriptions(dca, 'A after the merge', user)
                expect_subscriptions(dcb, 'B after the merge', user)
            expect_folders(dca, 'A after the merge', user, folder_mails)
            expect_folders(dcb, 'B after the merge', user, folder_mails)
            dcb.stop()
            dcb.check_log()
        dca.stop()
        dca.check_log()
    # a third machine sees every mail, from the store alone
    with OboxfsMount(env, url, env.path('mnt-c'), env.path('cache-c'),
                     OPTS) as c, \
            Dovecot(env, c.mountpoint, fmt,
                    rundir=env.path('dovecot-c')) as dcc:
        expect(dcc, 'C with an empty cache', user, sent)
        if maildir:
            expect_flags(dcc, 'C with an empty cache', user, first)
            expect_subscriptions(dcc, 'C with an empty cache', user)
        expect_folders(dcc, 'C with an empty cache', user, folder_mails)


if __name__ == '__main__':
    dovecot_scenario.main_wrapper(NAME, run)
