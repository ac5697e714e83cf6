#!/usr/bin/python3
"""test_fs_stale_names.py: the kernel never keeps serving a name that the
daemon changed behind its back (fs/kinval.c, fs/inode.c).

Stub entries are given to the kernel with a positive entry timeout, so
every name the daemon removes, adds or points at another file without the
kernel doing it must be invalidated.  Without Dovecot, on two mounts A
and B of one file:// store (split_check_interval=1):

1. a relocating rename (fs/fsops-dir.c): a stub with two names renamed
   into another folder gets a stub file of its own there.  Dovecot's way
   (link into the other folder's tmp/, rename into new/) is right at once;
   a stub looked up before its second name was made and then renamed into
   the other folder is right once the daemon's invalidation went (at most
   WAIT seconds), and either way reads the same mail;
2. a split-brain merge on A (engine/splitbrain.c) of B's changes: a flag
   change (A's stub renamed to the union of both sides' flags), an
   expunge (A's stub removed), a delivery (a stub put back under a name A
   had looked up and not found: a negative entry, in new/).  Every name A had
   stat()ed before the merge shows the merged state within WAIT seconds
   of the upload that merged.

A failure names the path and what the mount still showed.  The mounts
are always taken down.
"""
import errno
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402
from mailtest import OboxfsMount, TestEnv, fail, log, user_name  # noqa: E402

NAME = 'test_fs_stale_names'
OPTS = ['split_check_interval=1']
# seconds the daemon's invalidation of a name changed behind the kernel may
# take (it is sent by a thread of its own right after the change)
WAIT = 2.0
HOST = 'stale.example.com'


def body(n):
    return (f'From: a@example.com\r\nTo: b@example.com\r\n'
            f'Message-ID: <{n}@{HOST}>\r\nSubject: mail {n}\r\n\r\n'
            f'the body of mail {n}\r\n').encode()


def maildir(root, *folders):
    for f in ('',) + folders:
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(root, f, sub), exist_ok=True)


def deliver(folder, name, data, fsync=True):
    """a mail written in tmp/ and renamed into cur/ as name"""
    tmp = os.path.join(folder, 'tmp', name.split(':')[0])
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.rename(tmp, os.path.join(folder, 'cur', name))


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def exists(path):
    try:
        os.stat(path)
        return True
    except FileNotFoundError:
        return False


def settle(what, check):
    """check() must become true within WAIT seconds"""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            fail(f'{what}: still so {WAIT} s after the change')
        time.sleep(0.01)


def relocating_renames(mnt, cache):
    user = user_name(1)
    root = os.path.join(mnt, user, 'Maildir')
    meta = os.path.join(cache, 'meta', user, 'Maildir')
    maildir(root, '.f1', '.f2', '.f3')
    # Dovecot's copy with hard links: link into tmp/, rename into new/
    deliver(os.path.join(root, '.f1'), '1.M1.x:2,S', body(1))
    src = os.path.join(root, '.f1', 'cur', '1.M1.x:2,S')
    os.stat(src)
    os.link(src, os.path.join(root, '.f2', 'tmp', '2.M2.x'))
    os.rename(os.path.join(root, '.f2', 'tmp', '2.M2.x'),
              os.path.join(root, '.f2', 'new', '2.M2.x'))
    got = os.stat(os.path.join(root, '.f2', 'new', '2.M2.x')).st_ino
    want = os.stat(os.path.join(meta, '.f2', 'new', '2.M2.x')).st_ino
    if got != want or got == os.stat(src).st_ino:
        fail(f'.f2/new/2.M2.x: the mount shows inode {got}, the stub file '
             f'made for it is {want} (the source is {os.stat(src).st_ino})')
    if read(os.path.join(root, '.f2', 'new', '2.M2.x')) != body(1):
        fail('.f2/new/2.M2.x: wrong bytes')
    log('a hard-link copy renamed into new/: the new stub file at once')
    # the source's entry was given before its second name existed
    deliver(os.path.join(root, '.f1'), '3.M3.x:2,', body(3))
    src = os.path.join(root, '.f1', 'cur', '3.M3.x:2,')
    os.stat(src)
    os.link(src, os.path.join(root, '.f1', 'tmp', '3.M3.x'))
    dst = os.path.join(root, '.f3', 'cur', '3.M3.x:2,')
    os.rename(src, dst)
    if read(dst) != body(3):
        fail(f'{dst}: wrong bytes right after the rename')
    want = os.stat(os.path.join(meta, '.f3', 'cur', '3.M3.x:2,')).st_ino
    settle(f'{dst}: the mount shows the inode of the source, not {want}',
           lambda: os.stat(dst).st_ino == want)
    if exists(src) or read(dst) != body(3):
        fail(f'{src} still there, or {dst} has wrong bytes')
    log('a stub renamed into another folder: its new stub file shown')


def split_brain_merge(env, url):
    user = user_name(2)
    a_mnt, b_mnt = env.path('mnt-a'), env.path('mnt-b')
    with OboxfsMount(env, url, a_mnt, env.path('cache-a'), OPTS) as a:
        a_cur = os.path.join(a_mnt, user, 'Maildir', 'cur')
        maildir(os.path.join(a_mnt, user, 'Maildir'))
        deliver(os.path.dirname(a_cur), '10.M1.x:2,S', body(10))
        deliver(os.path.dirname(a_cur), '11.M2.x:2,', body(11))
        a.upload_now()
        with OboxfsMount(env, url, b_mnt, env.path('cache-b'), OPTS) as b:
            b_cur = os.path.join(b_mnt, user, 'Maildir', 'cur')
            # B takes the user over: a flag, an expunge, a delivery
            os.rename(os.path.join(b_cur, '10.M1.x:2,S'),
                      os.path.join(b_cur, '10.M1.x:2,RS'))
            os.unlink(os.path.join(b_cur, '11.M2.x:2,'))
            deliver(os.path.dirname(b_cur), '12.M3.x:2,', body(12))
            b.upload_now()
            # what A's kernel knows before the merge
            old, gone = (os.path.join(a_cur, '10.M1.x:2,S'),
                         os.path.join(a_cur, '11.M2.x:2,'))
            # a mail stored at its fsync in tmp/ comes back into new/
            # under its tmp/ name (docs/design.md)
            a_new = os.path.join(os.path.dirname(a_cur), 'new')
            new, back = (os.path.join(a_cur, '10.M1.x:2,RS'),
                         os.path.join(a_new, '12.M3.x'))
            for p in (old, gone):
                if read(p) != body(10 if p == old else 11):
                    fail(f'{p}: wrong bytes before the merge')
            for p in (new, back):
                if exists(p):
                    fail(f'{p}: there before the merge')
            time.sleep(1.1)
            s = a.upload_now()
            if s['index_split_brains'] < 1:
                fail('A did not notice the bundles B wrote')
            settle(f'{old} (renamed by the merge) still shown',
                   lambda: not exists(old))
            settle(f'{gone} (expunged by the merge) still shown',
                   lambda: not exists(gone))
            settle(f'{new} (the merged flags) not shown',
                   lambda: exists(new))
            settle(f'{back} (put back by the merge) not shown',
                   lambda: exists(back))
            if read(new) != body(10) or read(back) != body(12):
                fail('merged mails: wrong bytes')
            names = sorted(os.listdir(a_cur)) + sorted(os.listdir(a_new))
            if names != ['10.M1.x:2,RS', '12.M3.x']:
                fail(f'cur/ and new/ list {names}')
            log('split-brain merge: renamed, expunged and put-back names '
                'shown as merged')


def run(name):
    env = TestEnv(name)
    env.fresh_dir()
    url = 'file://' + env.path('store')
    os.makedirs(env.path('store'))
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache'), OPTS):
        relocating_renames(env.path('mnt'), env.path('cache'))
    split_brain_merge(env, url)


if __name__ == '__main__':
    # a mount point that is gone makes every later step fail: say so
    try:
        dovecot_scenario.main_wrapper(NAME, run)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            print(f'FAIL {NAME}: the mount went away: {e}', flush=True)
            sys.exit(1)
        raise
