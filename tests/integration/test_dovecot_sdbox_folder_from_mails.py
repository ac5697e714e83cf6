#!/usr/bin/python3
"""test_dovecot_sdbox_folder_from_mails.py: an sdbox folder that no index
tree names and whose own bundles are gone (lost from the store; or a
split brain, where they could not be read) is loaded from its mails alone (CONTRACT section 6:
"mails missing from the index tree are put back"), and Dovecot shows them
at once: the loader gives such a folder, which has no index at all, a
dovecot.index.log that makes Dovecot rebuild its index from the u.N files
(with none, Dovecot showed the folder empty until its next save there).

Mails go by IMAP APPEND into INBOX and a folder Archive on a file://
store; the mount is taken down (uploaded); every bundle of the user (its
root's and its folders') is deleted from the store.  A mount on an empty cache dir then shows Archive
and INBOX with every mail, same bytes, and a delivery to Archive after
that gets a new UID above them.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 66 .. + 68."""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import main_wrapper, store_setup  # noqa: E402
from mailtest import (Dovecot, Imap, OboxfsMount, Store, TestEnv,  # noqa: E402
                      fail, log, make_mails, user_name)

NAME = 'test_dovecot_sdbox_folder_from_mails'
BUNDLE = re.compile(r'^[0-9a-f]{2}/[0-9a-f]{3}/[^/]+/(mailboxes/[0-9a-f]{32}/)?'
                    r'idx/bundle\.')


def body_of(data):
    return data.replace(b'\r\n', b'\n').split(b'\n\n', 1)[1]


def check_folder(c, folder, mails, what):
    n = c.select(folder)
    bodies = c.fetch_bodies()
    if n != len(mails) or len(bodies) != len(mails):
        fail(f'{what}: {folder} has {n} mails ({len(bodies)} fetched), '
             f'expected {len(mails)}')
    want = sorted(body_of(m.data) for m in mails)
    got = sorted(body_of(b) for b in bodies.values())
    if want != got:
        fail(f'{what}: {folder} came back with other bytes')


def run(name, port_offset):
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, 'file')
    user = user_name(1)
    mails = make_mails([user], 6, seed=66, max_size=8 * 1024, tag=name)
    inbox, archive, later = mails[:2], mails[2:5], mails[5]

    with OboxfsMount(env, url, env.path('mnt'), env.path('cache1'),
                     opts) as mnt:
        with Dovecot(env, mnt.mountpoint, 'sdbox',
                     rundir=env.path('dc1')) as dc:
            with Imap(dc.imap_port, user) as c:
                c.ok('create', 'Archive')
                for m in inbox:
                    c.ok('append', 'INBOX', None, None, m.data)
                for m in archive:
                    c.ok('append', 'Archive', None, None, m.data)
                check_folder(c, 'Archive', archive, 'first mount')

    store = Store(url)
    gone = [k for k, _ in store.list() if BUNDLE.match(k)]
    if len(gone) < 3:
        fail(f'{len(gone)} bundles in the store: expected the user root\'s '
             'and the two folders\'')
    for k in gone:
        os.unlink(os.path.join(store.root, k))
    log(f'deleted the user\'s {len(gone)} bundles from the store')

    with OboxfsMount(env, url, env.path('mnt'), env.path('cache2'),
                     opts) as mnt:
        with Dovecot(env, mnt.mountpoint, 'sdbox',
                     rundir=env.path('dc2')) as dc:
            with Imap(dc.imap_port, user) as c:
                if 'Archive' not in c.folders(selectable=True):
                    fail(f'Archive is not listed: {c.folders()}')
                check_folder(c, 'Archive', archive, 'empty cache')
                check_folder(c, 'INBOX', inbox, 'empty cache')
                uids = c.uids() if c.select('Archive') else []
                c.ok('append', 'Archive', None, None, later.data)
                check_folder(c, 'Archive', archive + [later],
                             'after an append')
                new = [u for u in c.uids() if u not in uids]
                if len(new) != 1 or new[0] <= max(uids):
                    fail(f'the append got UIDs {new}, not one above '
                         f'{uids}')
            st = mnt.stats()
            if st.get('index_mails_put_back', 0) < len(archive):
                fail(f'index_mails_put_back is '
                     f'{st.get("index_mails_put_back")}, expected >= '
                     f'{len(archive)}')
    log('an sdbox folder no tree names: loaded from its mails, shown at '
        'once')


if __name__ == '__main__':
    main_wrapper(NAME, run, 66)
