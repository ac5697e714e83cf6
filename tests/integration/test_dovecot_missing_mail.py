#!/usr/bin/python3
"""test_dovecot_missing_mail.py: a mail object the store lost (deleted
behind oboxfs's back: another machine, an operator, a lifecycle rule)
breaks that mail only (the reliability issue; CONTRACT section 9).

Six mails are delivered to one INBOX on a file:// store and the mount is
taken down (indexes uploaded); one mail's object is then deleted from the
store.  On an empty cache dir (a takeover: every body comes from the store):
 - missing_mails=eio (default): every other mail's body is fetched with its
   bytes; the lost one fails with EIO (an IMAP NO), each time, never a hang
   or a crash; the daemon counts each failed open (mails_missing) and logs
   the key once;
 - missing_mails=drop: fetching the lost mail removes it (Dovecot sees it
   expunged), the same IMAP session goes on and then sees the five others;
   mails_missing_dropped is 1; a third mount on an empty cache has five.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 51 .. + 53."""
import imaplib
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import main_wrapper, store_setup  # noqa: E402
from mailtest import (Dovecot, Imap, OboxfsMount, Store, TestEnv,  # noqa: E402
                      deliver_parallel, fail, log, make_mails, user_name)

NAME = 'test_dovecot_missing_mail'
MAIL_KEY = re.compile(r'/mailboxes/[0-9a-f]{32}/[0-9a-f]{32}$')


def msgid_of(data):
    """The Message-ID of a mail (CRLF from IMAP, LF in a maildir file)."""
    for line in data.split(b'\n'):
        if line.lower().startswith(b'message-id:'):
            return line.split(b':', 1)[1].strip().decode()
    return None


def fetch_one(c, uid):
    """(typ, body or None) of UID FETCH uid BODY.PEEK[], without failing
    (Dovecot ends the session when a mail cannot be read: 'BYE')."""
    try:
        typ, data = c.c.uid('FETCH', str(uid), '(UID BODY.PEEK[])')
    except imaplib.IMAP4.abort:
        return 'BYE', None
    body = next((item[1] for item in data or () if isinstance(item, tuple)),
                None)
    return typ, body


def check_inbox_of(c, n_want, sent, what):
    """SELECT INBOX has n_want mails, each fetched with its bytes."""
    n = c.select('INBOX')
    bodies = c.fetch_bodies()
    if n != n_want or len(bodies) != n_want:
        fail(f'{what}: the INBOX has {n} mails and FETCH gave '
             f'{len(bodies)}; expected {n_want}')
    check_bodies(bodies, sent, what)


def check_bodies(bodies, sent, what):
    for uid, body in bodies.items():
        m = sent.get(msgid_of(body))
        if m is None or not body.endswith(m.data.split(b'\r\n\r\n', 1)[1]):
            fail(f'{what}: UID {uid} came back with other bytes')


class DovecotExpectingErrors(Dovecot):
    """Dovecot logs the failed reads of the lost mail as errors: those are
    expected; a panic, a fatal error or a killed process is not."""

    def check_log(self):
        bad = [ln for ln in self.log_problems()
               if not re.search(r'Input/output error|No such file|'
                                r'Internal error|expunged|FETCH', ln)
               or re.search(r'Panic|Fatal|signal', ln)]
        if bad:
            fail(f'dovecot log {self.log_path}: {len(bad)} unexpected '
                 'error lines:\n    ' + '\n    '.join(bad[:20]))


def run(name, port_offset):
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, 'file')
    store = Store(url)
    user = user_name(1)
    mails = make_mails([user], 6, seed=51, tag=name)
    sent = {m.msgid: m for m in mails}

    with OboxfsMount(env, url, env.path('mnt'), env.path('cache1'),
                     opts) as mnt:
        with Dovecot(env, mnt.mountpoint, 'maildir',
                     rundir=env.path('dc1')) as dc:
            deliver_parallel(dc.lmtp_port, mails, senders=2)
            with Imap(dc.imap_port, user) as c:
                if c.select('INBOX') != 6:
                    fail('the INBOX does not have the 6 mails delivered')
    keys = [k for k, _ in store.list() if MAIL_KEY.search(k)]
    if len(keys) != 6:
        fail(f'{len(keys)} mail objects in the store, expected 6')
    lost_key = keys[2]
    lost = msgid_of(store.get(lost_key))
    if lost not in sent:
        fail(f'{lost_key}: no Message-ID of a mail sent in it')
    os.unlink(os.path.join(store.root, lost_key))
    log(f'deleted {lost_key} ({lost}) from the store')

    # missing_mails=eio: that mail fails, every other one reads
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache2'),
                     opts) as mnt:
        with DovecotExpectingErrors(env, mnt.mountpoint, 'maildir',
                                    rundir=env.path('dc2')) as dc:
            c = Imap(dc.imap_port, user)
            c.select('INBOX')
            bodies, failed = {}, []
            for uid in c.uids():
                typ, body = fetch_one(c, uid)
                if typ == 'OK' and body is not None:
                    bodies[uid] = body
                else:
                    failed.append(uid)
                    c.close()  # Dovecot may end the session: a new one
                    c = Imap(dc.imap_port, user)
                    c.select('INBOX')
            if len(failed) != 1 or len(bodies) != 5:
                fail(f'eio: {len(bodies)} mails read and UIDs {failed} '
                     'failed; expected 5 read and 1 failed')
            check_bodies(bodies, sent, 'eio')
            if lost in {msgid_of(b) for b in bodies.values()}:
                fail('eio: the lost mail was read')
            # again: it fails again, logged once
            typ, _ = fetch_one(c, failed[0])
            c.close()
            if typ == 'OK':
                fail('eio: the lost mail read the second time')
            st = mnt.stats()
            if st.get('mails_missing', 0) < 2:
                fail(f'eio: mails_missing is {st.get("mails_missing")}, '
                     'expected one per failed open (>= 2)')
        with open(mnt.log_path, 'rb') as f:
            logged = f.read().decode('utf-8', 'replace').count(
                f'mail object {lost_key} is missing')
        if logged != 1:
            fail(f'eio: the missing key was logged {logged} times, not once')

    # missing_mails=drop: the lost mail goes, the session goes on
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache3'),
                     opts + ['missing_mails=drop']) as mnt:
        with DovecotExpectingErrors(env, mnt.mountpoint, 'maildir',
                                    rundir=env.path('dc3')) as dc:
            with Imap(dc.imap_port, user) as c:
                c.select('INBOX')
                typ, _ = c.c.uid('FETCH', '1:*', '(UID BODY.PEEK[])')
                log(f'drop: the first FETCH 1:* said {typ}')
                # the same session goes on (no BYE)
                c.ok('noop')
                check_inbox_of(c, 5, sent, 'drop')
            st = mnt.stats()
            if st.get('mails_missing_dropped') != 1:
                fail(f'drop: mails_missing_dropped is '
                     f'{st.get("mails_missing_dropped")}, expected 1')
            mnt.upload_now()

    # and another machine sees five mails, all readable
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache4'),
                     opts) as mnt:
        with Dovecot(env, mnt.mountpoint, 'maildir',
                     rundir=env.path('dc4')) as dc:
            with Imap(dc.imap_port, user) as c:
                check_inbox_of(c, 5, sent, 'after the drop, a fresh mount')
    log('a lost mail object: EIO for that mail only, or dropped')


if __name__ == '__main__':
    main_wrapper(NAME, run, 51)
