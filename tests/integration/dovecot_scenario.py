#!/usr/bin/python3
"""dovecot_scenario.py: the Dovecot-on-oboxfs scenarios run by the
test_dovecot_* scripts (see tests/integration/mailtest.py for the pieces).

run_main(): LMTP deliveries from parallel senders, read back over IMAP and
POP3, flags, COPY/MOVE/EXPUNGE, CREATE/RENAME/DELETE with several IMAP
clients at once, then a check of the store (one object per mail, names,
bytes, metadata, nothing from tmp/, no index files) and of Dovecot's log.
run_remount(): state survives stop + unmount + remount with the same cache,
with an empty cache (a second machine), or a SIGKILLed daemon.
"""
import hashlib
import os
import re
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mailclients import (Imap, TestFailure, check_delivered,  # noqa: E402
                         deliver_parallel, fail, log, make_mails, message_id,
                         pop3_retr_all, run_threads, uidset, user_name, _q)
from mailtest import (BUNDLE_KEY_RE, MAIL_KEY_RE, ROOT_ATTR_KEY, Dovecot,  # noqa: E402
                      OboxfsMount, S3Config, Store, TestEnv, store_requests)

CUSTOM = '$Custom1'


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- setup

def store_setup(env, kind):
    """(store URL, extra mount options) for a fresh store of kind file|s3."""
    if env.plain:
        return None, []
    if kind == 'file':
        os.makedirs(env.path('store'))
        return 'file://' + env.path('store'), []
    s3 = S3Config()
    cred = s3.write_credentials(env.path('s3.cred'))
    prefix = f'{env.name}-{os.getpid()}-{int(time.time() * 1000)}'
    return (f's3://{s3.bucket}/{prefix}',
            [f'endpoint={s3.endpoint}', f'region={s3.region}',
             f'credentials={cred}'])


def main_wrapper(name, fn, *args):
    """Run a scenario; print PASS/FAIL and exit 0/1 (cleanups run at exit)."""
    t0 = time.monotonic()
    try:
        fn(name, *args)
    except TestFailure as e:
        print(f'FAIL {name} ({time.monotonic() - t0:.1f} s): {e}', flush=True)
        sys.exit(1)
    print(f'PASS {name} ({time.monotonic() - t0:.1f} s)', flush=True)
    sys.exit(0)


# ---------------------------------------------------------------- IMAP state

def clean_flags(flags):
    return frozenset(f for f in flags if f != '\\Recent')


def folder_state(c, folder):
    """{msgid: (flags, body)} of a folder, via an open IMAP session."""
    c.select(folder, readonly=True)
    bodies = c.fetch_bodies()
    flags = c.fetch_flags()
    if set(bodies) != set(flags):
        fail(f'{c.user} {folder}: FETCH BODY and FLAGS UIDs differ')
    out = {}
    for uid, body in bodies.items():
        mid = message_id(body)
        if mid is None or mid in out:
            fail(f'{c.user} {folder} UID {uid}: no or duplicate Message-ID')
        out[mid] = (clean_flags(flags[uid]), body)
    return out


def check_folder(c, folder, expected, sent):
    """expected: {msgid: flags}; bodies are compared with what was sent."""
    got = folder_state(c, folder)
    if set(got) != set(expected):
        fail(f'{c.user} {folder}: expected {len(expected)} mails, got '
             f'{len(got)}; missing {sorted(set(expected) - set(got))[:5]}, '
             f'unexpected {sorted(set(got) - set(expected))[:5]}')
    for mid, (flags, body) in got.items():
        check_delivered(body, sent[mid], f'IMAP {c.user} {folder}')
        if flags != frozenset(expected[mid]):
            fail(f'{c.user} {folder} {mid}: flags {sorted(flags)}, '
                 f'expected {sorted(expected[mid])}')


def check_inboxes(dc, users, model, sent):
    def one(user):
        with Imap(dc.imap_port, user) as c:
            for folder, exp in model[user].items():
                check_folder(c, folder, exp, sent)
    run_threads(one, users)


def check_pop3(dc, users, model, sent):
    def one(user):
        got = pop3_retr_all(dc.pop3_port, user)
        if len(got) != len(model[user]['INBOX']):
            fail(f'POP3 {user}: {len(got)} mails, expected '
                 f'{len(model[user]["INBOX"])}')
        for data in got:
            mid = message_id(data)
            if mid not in model[user]['INBOX']:
                fail(f'POP3 {user}: unexpected mail {mid}')
            check_delivered(data, sent[mid], f'POP3 {user}')
    run_threads(one, users)


# ---------------------------------------------------------------- folder ops

def create_folder(c, name):
    """CREATE name.  Under load Dovecot 2.3 now and then answers a CREATE of
    a new name with NO [ALREADYEXISTS] although it did create the folder (seen
    on a plain local directory too): accepted only if the folder is then
    listed and empty."""
    try:
        typ, data = c.c.create(_q(name))
    except Exception as e:  # noqa: B902 - imaplib raises several types
        fail(f'IMAP {c.user} CREATE {name}: {e}')
    if typ == 'OK':
        return
    if b'ALREADYEXISTS' in (data[0] or b'') and \
            name in c.folders(selectable=True) and \
            c.status(name)['MESSAGES'] == 0:
        log(f'note: {c.user} CREATE {name}: {data[0]!r}, but the folder '
            'exists and is empty (Dovecot race, also seen on a plain dir)')
        return
    fail(f'IMAP {c.user} CREATE {name}: {typ} {data}')


def check_free_ops(mnt, dc, user, model):
    """CONTRACT 8: a warm login, STATUS, reading cached mails and flag
    changes cost no object-store request at all."""
    if mnt.env.plain:
        return
    before = mnt.stats()
    with Imap(dc.imap_port, user) as c:
        c.status('INBOX')
        c.select('INBOX')
        c.fetch_bodies()
        c.store('1:3', '+FLAGS', '\\Flagged')
        c.store('1:3', '-FLAGS', '\\Flagged')
        c.fetch_flags()
        c.ok('noop')
    after = mnt.stats()
    used = {k: after[k] - before.get(k, 0) for k in after
            if k.startswith('requests') and after[k] != before.get(k, 0)}
    if store_requests(after) != store_requests(before) or used:
        fail(f'{user}: a warm login, FETCH and flag changes sent store '
             f'requests: {used}')
    log('warm login, FETCH and flag changes: no store requests')


def folder_ops(dc, user, model):
    """Flags, COPY, MOVE, EXPUNGE, CREATE/RENAME/DELETE on user's INBOX
    (at least 12 mails); updates model to what must result."""
    with Imap(dc.imap_port, user) as c:
        c.select('INBOX')
        uid_mid = {u: message_id(b) for u, b in c.fetch_bodies().items()}
        uids = sorted(uid_mid)
        if len(uids) < 12:
            fail(f'{user}: need 12 mails for the folder operations')
        m = [uid_mid[u] for u in uids]
        inbox = {mid: set() for mid in m}
        c.store('1:*', 'FLAGS.SILENT', '')
        c.store(uidset(uids[0:5]), '+FLAGS', f'\\Seen \\Flagged {CUSTOM}')
        c.store(str(uids[2]), '-FLAGS', '\\Flagged')
        for mid in m[0:5]:
            inbox[mid] = {'\\Seen', '\\Flagged', CUSTOM}
        inbox[m[2]] = {'\\Seen', CUSTOM}
        create_folder(c, 'Archive')
        create_folder(c, 'Work/Projects')
        c.uid('COPY', uidset(uids[0:3]), 'Archive')
        archive = {mid: set(inbox[mid]) for mid in m[0:3]}
        c.uid('MOVE', uidset(uids[5:8]), _q('Work/Projects'))
        moved = {mid: inbox.pop(mid) for mid in m[5:8]}
        c.store(uidset(uids[8:10]), '+FLAGS', '\\Deleted')
        c.ok('expunge')
        for mid in m[8:10]:
            del inbox[mid]
        create_folder(c, 'Tmp')
        c.uid('COPY', uidset(uids[10:12]), 'Tmp')
        c.ok('delete', 'Tmp')
        c.ok('rename', _q('Work/Projects'), 'Done')
        create_folder(c, 'Empty')
        c.ok('delete', 'Empty')
        # a mail flagged after it was copied: the copy keeps the old flags
        c.store(str(uids[0]), '-FLAGS', '\\Flagged')
        inbox[m[0]].discard('\\Flagged')
        names = c.folders()
        for gone in ('Tmp', 'Empty', 'Work/Projects'):
            if gone in names:
                fail(f'{user}: folder {gone} still listed after DELETE/RENAME')
        for there in ('INBOX', 'Archive', 'Done'):
            if there not in names:
                fail(f'{user}: folder {there} not listed: {names}')
        st = c.status('Done')
        if st['MESSAGES'] != 3:
            fail(f'{user}: Done has {st["MESSAGES"]} mails, expected 3')
        c.select('Archive', readonly=True)
        if c.uids() != [1, 2, 3]:
            fail(f'{user}: Archive UIDs {c.uids()}, expected [1, 2, 3]')
    model[user] = {'INBOX': inbox, 'Archive': archive, 'Done': moved}


def watcher(dc, user, stop):
    """A second client on the same INBOX, polling while others change it."""
    with Imap(dc.imap_port, user) as c:
        c.select('INBOX')
        rounds = 0
        while not stop.is_set() or rounds < 2:
            c.fetch_flags()
            c.ok('noop')
            rounds += 1
            time.sleep(0.05)


def reader(dc, user, model, sent, stop):
    """Fetch and check every body of user's INBOX until told to stop."""
    rounds = 0
    with Imap(dc.imap_port, user) as c:
        while not stop.is_set() or rounds < 1:
            check_folder(c, 'INBOX', model[user]['INBOX'], sent)
            rounds += 1


def concurrent_ops(dc, users, model, sent):
    """folder_ops on users[0] and users[1] while a watcher polls users[0]'s
    INBOX and readers fetch users[2:] at the same time."""
    stop = threading.Event()
    tasks = [lambda: folder_ops(dc, users[0], model),
             lambda: folder_ops(dc, users[1], model),
             lambda: watcher(dc, users[0], stop)]
    for u in users[2:]:
        tasks.append(lambda u=u: reader(dc, u, model, sent, stop))

    def run(i):
        try:
            tasks[i]()
        finally:
            if i < 2:
                done[i] = True
                if all(done):
                    stop.set()
    done = [False, False]
    try:
        run_threads(run, range(len(tasks)))
    finally:
        stop.set()


# ---------------------------------------------------------------- the store

class MailFile:
    __slots__ = ('user', 'dir', 'name', 'sha', 'ino', 'size')

    def __init__(self, user, dir_, name, sha_, ino, size):
        self.user, self.dir, self.name = user, dir_, name
        self.sha, self.ino, self.size = sha_, ino, size

    def __str__(self):
        return f'{self.user}/{self.dir}/{self.name}'


def snapshot(mailroot, fmt):
    """Every mail file under mailroot as MailFile (read through the mount),
    plus the files left in maildir tmp/ directories."""
    files, tmp = [], []
    for user in sorted(os.listdir(mailroot)):
        udir = os.path.join(mailroot, user)
        if user.startswith('.') or not os.path.isdir(udir):
            continue
        for root, _, names in os.walk(udir):
            base = os.path.basename(root)
            rel = os.path.relpath(root, udir)
            if fmt == 'maildir' and base == 'tmp':
                tmp += [f'{user}/{rel}/{n}' for n in names]
            if not ((fmt == 'maildir' and base in ('cur', 'new')) or
                    (fmt == 'sdbox' and base == 'dbox-Mails')):
                continue
            for n in names:
                if fmt == 'sdbox' and not re.match(r'^u\.\d+$', n):
                    if n.startswith('temp.'):  # being written
                        tmp.append(f'{user}/{rel}/{n}')
                    continue  # sdbox keeps its index files here too
                p = os.path.join(root, n)
                with open(p, 'rb') as f:
                    data = f.read()
                st = os.stat(p)
                files.append(MailFile(user, rel, n, sha(data), st.st_ino,
                                      len(data)))
    return files, tmp


def _ident(fmt, path, name):
    """What identifies a mail file across flag changes: maildir keeps the
    base name (before ':2,FLAGS') and moves new/ -> cur/.  A mail stored at
    its fsync in tmp/ (store_on_fsync) has its tmp/ path and name as
    metadata: Dovecot's rename into new/ or cur/ keeps the unique part of
    the name and adds fields (',S=<size>,W=<vsize>'), which are left out."""
    if fmt == 'maildir':
        if path.endswith(('/new', '/tmp')) or path in ('new', 'tmp'):
            path = path[:-3] + 'cur'
        return path, name.split(':', 1)[0].split(',', 1)[0]
    return path, name


def _folder(path):
    """The folder part of a mail's path (without cur/new or dbox-Mails)."""
    return path.rsplit('/', 1)[0] if '/' in path else ''


def _leaf(ident):
    path, name = ident
    return path.rsplit('/', 1)[-1], name


def match_objects(fmt, files, objs, problems):
    """Pair each mail (the files of one inode: hard links) with its object:
    first by metadata (path/name naming one of its files, same bytes), then
    the rest by bytes (every test mail is unique, but a COPY may give the
    copy its own object with the same bytes).  Returns [(files, object)];
    missing, duplicate and orphan objects go to problems."""
    groups = {}
    for f in files:
        groups.setdefault((f.user, f.ino), []).append(f)
    groups = list(groups.values())
    by_ident = {}
    for o in objs:
        by_ident.setdefault((o['user'],) + _ident(fmt, o['path'], o['name']),
                            []).append(o)
    taken, pairs, left = set(), [], []
    for g in groups:
        if len({f.sha for f in g}) > 1:
            problems.append('hard links with different bytes: ' +
                            ', '.join(map(str, g)))
        cands = {}
        for f in g:
            for o in by_ident.get((f.user,) + _ident(fmt, f.dir, f.name), []):
                if o['sha'] == g[0].sha:
                    cands[o['key']] = o
        if not cands:
            left.append(g)
            continue
        if len(cands) > 1:
            problems.append(f'{len(cands)} objects for one mail '
                            f'{", ".join(map(str, g))}: {sorted(cands)}')
        taken.update(cands)
        pairs.append((g, next(iter(cands.values()))))
    spare = {}
    for o in objs:
        if o['key'] not in taken:
            spare.setdefault((o['user'], o['sha']), []).append(o)
    for g in left:
        cands = spare.get((g[0].user, g[0].sha), [])
        if not cands:
            problems.append('no object (with these bytes) for mail ' +
                            ', '.join(map(str, g)))
            continue
        leaves = {_leaf(_ident(fmt, f.dir, f.name)) for f in g}
        cands.sort(key=lambda o: _leaf(_ident(fmt, o['path'], o['name']))
                   not in leaves)
        o = cands.pop(0)
        taken.add(o['key'])
        pairs.append((g, o))
    for o in objs:
        if o['key'] not in taken:
            problems.append(f'object {o["key"]} ({o["path"]}/{o["name"]}) '
                            'belongs to no existing mail (expunged/deleted '
                            'mail whose object was not deleted, or a '
                            'duplicate?)')
    return pairs


def check_store(store, files, fmt):
    """Exactly one object per mail file (hard links share one), correct names,
    bytes and metadata; no objects for index files, nor for tmp/ files
    (maildir: a mail stored at its fsync in tmp/ has tmp/ as its path
    metadata, and must have been renamed into new/ or cur/: an object of a
    file still in tmp/, or of one Dovecot unlinked, belongs to no mail).  Objects
    and mails are matched by content (every test mail is unique).  Returns a
    list of problems (empty: all good).

    A COPY may share the object (hard link: one inode) or get its own.
    Folder GUIDs: the objects of the mails that are in one folder only share
    one GUID, and no two folders share one.  Metadata path/name must name one
    of the mail's files (maildir: flags and new/cur aside), except that after
    a folder RENAME the folder part may still be the old one: a rename is an
    index change (CONTRACT 5: it may be lost in a crash), the GUID is what
    ties the object to its folder."""
    problems = []
    objs, bundles = [], []
    for key, size in store.list():
        m = MAIL_KEY_RE.match(key)
        if BUNDLE_KEY_RE.match(key):
            bundles.append(key)
            continue
        if key == ROOT_ATTR_KEY:  # the mount root's owner and mode
            continue
        if not m:
            problems.append(f'object with an unexpected name: {key}')
            continue
        meta = store.meta(key)
        path, name = meta.get('path'), meta.get('name')
        if not path or not name:
            problems.append(f'{key}: metadata path/name missing: {meta}')
            continue
        if fmt != 'maildir' and (
                path == 'tmp' or path.endswith('/tmp') or '/tmp/' in path):
            problems.append(f'{key}: object for a tmp/ file: {path}/{name}')
        if name.startswith('dovecot') or (
                fmt == 'sdbox' and not re.match(r'^u\.\d+$', name)) or (
                fmt == 'maildir' and
                not re.search(r'(^|/)(cur|new|tmp)$', path)):
            problems.append(f'{key}: not a mail file: {path}/{name}')
        data = store.get(key)
        if len(data) != size:
            problems.append(f'{key}: listed with {size} bytes, GET gave {len(data)}')
        objs.append({'key': key, 'user': m.group(3), 'path': path,
                     'name': name, 'sha': sha(data),
                     'hash': m.group(1) + '/' + m.group(2),
                     'guid': m.group(4)})
    hashes = {}
    for o in objs:
        hashes.setdefault(o['user'], set()).add(o['hash'])
    for user, v in hashes.items():
        if len(v) > 1:
            problems.append(f'{user}: objects under {len(v)} different hash '
                            f'prefixes: {sorted(v)}')

    pairs = match_objects(fmt, files, objs, problems)

    # folder GUIDs, from the mails that are in one folder only
    folder_guids, owner = {}, {}
    for g, o in pairs:
        folders = {_folder(f.dir) for f in g}
        if len(folders) == 1:
            folder_guids.setdefault((g[0].user, folders.pop()),
                                    set()).add(o['guid'])
    for (user, folder), guids in sorted(folder_guids.items()):
        if len(guids) > 1:
            problems.append(f'{user}: the mails of folder {folder} are under '
                            f'{len(guids)} folder GUIDs: {sorted(guids)}')
        for guid in guids:
            other = owner.setdefault((user, guid), folder)
            if other != folder:
                problems.append(f'{user}: folders {other} and {folder} share '
                                f'the folder GUID {guid} (a moved mail left '
                                'under its old folder?)')
    renamed = 0
    for g, o in pairs:
        ids = {_ident(fmt, f.dir, f.name) for f in g}
        oid = _ident(fmt, o['path'], o['name'])
        if oid in ids:
            continue
        folders = {_folder(f.dir) for f in g}
        if len(folders) == 1 and _leaf(oid) in {_leaf(i) for i in ids} and \
                owner.get((g[0].user, o['guid'])) == next(iter(folders)):
            renamed += 1
            continue
        problems.append(f'{o["key"]}: metadata says {o["path"]}/{o["name"]}'
                        f' but the mail is {", ".join(map(str, g))}')
    log(f'store: {len(objs)} mail objects, {len(bundles)} bundles; '
        f'{len(files)} mail files in {len({(f.user, f.ino) for f in files})}'
        ' inodes' +
        (f'; {renamed} with the folder name from before a RENAME in their '
         'metadata' if renamed else ''))
    if problems:
        return [f'{len(problems)} problems in the store {store.url}:\n    ' +
                '\n    '.join(problems[:40])]
    return []


def final_checks(env, dc, mnt, store, fmt, deferred=None):
    """Stop Dovecot, snapshot the mail files, unmount, check the store.
    Store problems fail at once, or are appended to deferred if given."""
    dc.stop()
    dc.check_log()
    files, tmp = snapshot(mnt.mountpoint, fmt)
    if tmp:
        fail(f'files left in tmp/ after Dovecot stopped: {tmp[:10]}')
    mnt.stop()
    mnt.check()
    if store is None:
        log('PLAIN MODE: no store to check')
        return files
    problems = check_store(store, files, fmt)
    if problems and deferred is None:
        fail(problems[0])
    if problems:
        log('store check failed (reported at the end): ' + problems[0])
        deferred += [f'after unmount #{mnt.starts}: {p}' for p in problems]
    return files


# ---------------------------------------------------------------- scenarios

def run_main(name, fmt, kind='file', port_offset=0, nusers=4, per_user=14):
    env = TestEnv(name, port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, kind)
    users = [user_name(i) for i in range(1, nusers + 1)]
    mails = make_mails(users, nusers * per_user, seed=zlib.crc32(name.encode()),
                       tag=name)
    sent = {m.msgid: m for m in mails}
    model = {u: {'INBOX': {m.msgid: set() for m in mails if m.user == u}}
             for u in users}
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache'),
                     opts) as mnt:
        with Dovecot(env, mnt.mountpoint, fmt) as dc:
            t = deliver_parallel(dc.lmtp_port, mails, senders=4)
            log(f'delivered {len(mails)} mails in {t:.2f} s')
            if url:
                # acknowledged deliveries are in the store already
                files, _ = snapshot(mnt.mountpoint, fmt)
                if len(files) != len(mails):
                    fail(f'{len(files)} mail files after {len(mails)} '
                         'deliveries')
                problems = check_store(Store(url), files, fmt)
                if problems:
                    fail('right after the deliveries: ' + problems[0])
                log('store right after the deliveries: ok')
            check_inboxes(dc, users, model, sent)
            log('IMAP read back: ok')
            check_pop3(dc, users, model, sent)
            for u in users:  # POP3 RETR sets \Seen
                model[u]['INBOX'] = {mid: {'\\Seen'}
                                     for mid in model[u]['INBOX']}
            log('POP3 read back: ok')
            check_free_ops(mnt, dc, users[-1], model)
            concurrent_ops(dc, users, model, sent)
            log('flags, COPY, MOVE, EXPUNGE, CREATE/RENAME/DELETE: ok')
            more = make_mails(users, nusers * 2, seed=7, tag=name + '-2')
            deliver_parallel(dc.lmtp_port, more, senders=4)
            for m in more:
                sent[m.msgid] = m
                model[m.user]['INBOX'][m.msgid] = set()
            check_inboxes(dc, users, model, sent)
            log('second delivery round + final IMAP state: ok')
            store = Store(url) if url else None
            final_checks(env, dc, mnt, store, fmt)


def imap_state(dc, users):
    """{user: {folder: {msgid: (flags, sha)}}} of every selectable folder."""
    out = {}

    def one(user):
        with Imap(dc.imap_port, user) as c:
            st = {}
            for folder in c.folders(selectable=True):
                fs = folder_state(c, folder)
                st[folder] = {mid: (fl, sha(b)) for mid, (fl, b) in fs.items()}
            out[user] = st
    run_threads(one, users)
    return out


def run_remount(name, fmt='maildir', kind='file', port_offset=0,
                variant='same-cache'):
    """Deliver, flag, copy, expunge; stop Dovecot and take the mount down,
    mount again, start Dovecot and compare.  variant: 'same-cache' (clean
    unmount, same cache dir: everything must be as before), 'fresh-cache'
    (clean unmount, empty cache dir: the same, from the store alone), or
    'crash' (the daemon is SIGKILLed; same cache dir: every acknowledged mail
    must be there with its bytes; flags may be lost)."""
    env = TestEnv(name, port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, kind)
    users = [user_name(i) for i in range(1, 4)]
    mails = make_mails(users, 36, seed=11, tag=name)
    sent = {m.msgid: m for m in mails}
    mnt = OboxfsMount(env, url, env.path('mnt'), env.path('cache'), opts)
    dc = Dovecot(env, env.path('mnt'), fmt)
    store = Store(url) if url else None
    deferred = []
    try:
        mnt.start()
        dc.start()
        deliver_parallel(dc.lmtp_port, mails, senders=4)
        with Imap(dc.imap_port, users[0]) as c:
            c.select('INBOX')
            c.store('1:4', '+FLAGS', '\\Seen')
            c.store('3:6', '+FLAGS', f'\\Flagged {CUSTOM}')
            c.store('7', '+FLAGS', '\\Answered \\Draft')
            want = {1: {'\\Seen'}, 2: {'\\Seen'},
                    3: {'\\Seen', '\\Flagged', CUSTOM},
                    4: {'\\Seen', '\\Flagged', CUSTOM},
                    5: {'\\Flagged', CUSTOM}, 6: {'\\Flagged', CUSTOM},
                    7: {'\\Answered', '\\Draft'}}
            got = c.fetch_flags('1:7')
            for uid, fl in want.items():
                if clean_flags(got.get(uid, ())) != fl:
                    fail(f'{users[0]} UID {uid}: flags {sorted(got.get(uid, ()))}'
                         f', expected {sorted(fl)}')
        with Imap(dc.imap_port, users[1]) as c:
            create_folder(c, 'Kept')
            c.select('INBOX')
            c.uid('COPY', '1:3', 'Kept')
            pre = imap_state(dc, [users[1]])[users[1]]['INBOX']
            c.store('2', '+FLAGS', '\\Deleted')
            c.ok('expunge')
        before = imap_state(dc, users)
        # a crash may lose index changes made since the last upload
        # (CONTRACT 5): the expunged mail may come back, nothing else
        may_return = {(users[1], 'INBOX', mid): h for mid, (_, h) in pre.items()
                      if mid not in before[users[1]]['INBOX']}
        if variant == 'crash':
            dc.stop()
            dc.check_log()
            files_before, _ = snapshot(mnt.mountpoint, fmt)
            mnt.kill()
        else:
            files_before = final_checks(env, dc, mnt, store, fmt, deferred)
        if variant == 'fresh-cache':
            mnt.cache_dir = env.path('cache2')
        log(f'remounting ({variant})')
        mnt.start()
        dc.start()
        after = imap_state(dc, users)
        for u in users:
            if variant == 'crash':  # mails must be there, flags may be lost
                b = {f: {m: h for m, (_, h) in st.items()}
                     for f, st in before[u].items()}
                a = {f: {m: h for m, (_, h) in st.items()
                         if may_return.get((u, f, m)) != h or
                         m in before[u].get(f, {})}
                     for f, st in after[u].items()}
            else:
                b, a = before[u], after[u]
            if a != b:
                diff = [f for f in set(b) | set(a) if b.get(f) != a.get(f)]
                fail(f'{u}: state differs after the remount in {diff}: '
                     f'before {_summary(b)}, after {_summary(a)}')
        for u in users:
            with Imap(dc.imap_port, u) as c:
                for folder, st in after[u].items():
                    check_folder(c, folder, {mid: fl for mid, (fl, _) in
                                             st.items()}, sent)
        files_after = final_checks(env, dc, mnt, store, fmt, deferred)
        b = sorted((str(f), f.sha) for f in files_before)
        a = sorted((str(f), f.sha) for f in files_after)
        if a != b and variant != 'crash':
            fail(f'mail files differ after the remount: gone '
                 f'{sorted(set(b) - set(a))[:5]}, new {sorted(set(a) - set(b))[:5]}')
        log(f'remount ({variant}): {len(a)} mail files; mails'
            f'{"" if variant == "crash" else ", flags"} and folders unchanged')
        if deferred:
            fail('\n'.join(deferred))
    finally:
        dc.stop()
        mnt.stop()


def _summary(st):
    return {f: len(v) for f, v in st.items()}
