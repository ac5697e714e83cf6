#!/usr/bin/python3
"""test_dovecot_small_caches.py: both caches stay within their caps under
far more mail than they hold, and misses are served from the store
(CONTRACT §7, docs/caches.md).

maildir on a file:// store, mounted with cache_size=20M, metacache_size=3M,
metacache_idle=15 (the least allowed).  24 users; about 200 MB of mail (20-200 KB each, 10 times
the mail cache) delivered over LMTP by 4 parallel senders, a fourth of them
to user+Archive (Dovecot's lmtp_save_to_detail_mailbox: a second folder).
A sampler thread measures CACHE/mail (the sum of its file sizes) and the
stats line oboxfs_mailcache_bytes every 0.2 s all along: neither may ever
exceed 1.05 * cache_size.

After the deliveries, flags are set on a few mails of user1..user3 (uploaded
before any eviction: CONTRACT §7 evicts only stored users).  Then 4 IMAP
clients read every body of user4..user24 back (oldest deliveries first, so
the mail cache must miss) and compare them with what was sent; meanwhile the
idle users 1-3 are evicted from the metacache (their CACHE/meta/USER tree
disappears).  Then user1..user3 are read back: they are loaded again from
the store (index_users_loaded grows) with their mails and flags intact.
Checked from the stats: oboxfs_mailcache_misses_total grew, requests_get
grew, and bytes_in grew by at least (bytes read - cache_size): the misses
were served from the store; oboxfs_metacache_evictions_total > 0 and, once
every user is idle, oboxfs_metacache_bytes <= 1.05 * metacache_size.  At
the end Dovecot's log has no error, the daemon exits cleanly and the store
holds one object per mail.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 36 .. + 38."""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import (CUSTOM, check_folder, create_folder,  # noqa: E402
                              main_wrapper, store_setup)
from mailtest import (MAIL_KEY_RE, Dovecot, Imap, OboxfsMount,  # noqa: E402
                      Store, TestEnv, deliver_parallel, fail, log,
                      make_mails, message_id, run_threads, uidset,
                      user_name)

NUSERS = 24
CACHE_SIZE = 20 * 1024 * 1024
META_SIZE = 3 * 1024 * 1024
VOLUME = 200 * 1024 * 1024  # bytes of mail delivered: 10 x CACHE_SIZE
MIN_SIZE, MAX_SIZE = 20 * 1024, 200 * 1024
FLAGGED_USERS = 3  # user1..user3: flags set, then evicted and reloaded
SLACK = 1.05
EXTRA_CONF = '''recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
'''


def mail_dir_bytes(path):
    """Sum of the file sizes below path (files vanish while we walk)."""
    total = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except FileNotFoundError:
                pass
    return total


class Sampler(threading.Thread):
    """Largest mail cache size seen, on disk and as the daemon counts it."""

    def __init__(self, mnt, mail_dir):
        super().__init__(daemon=True)
        self.mnt, self.mail_dir = mnt, mail_dir
        self.stop_ev = threading.Event()
        self.max_disk = self.max_stat = self.samples = 0
        self.error = None

    def run(self):
        try:
            while not self.stop_ev.is_set():
                # a walk is no snapshot: entries added in directories not
                # walked yet count, evictions in walked ones do not (over
                # a slow walk of a busy cache that is megabytes); an
                # overshoot that is real shows in two walks in a row
                disk = min(mail_dir_bytes(self.mail_dir),
                           mail_dir_bytes(self.mail_dir))
                stat = self.mnt.stats()['oboxfs_mailcache_bytes']
                self.max_disk = max(self.max_disk, disk)
                self.max_stat = max(self.max_stat, stat)
                self.samples += 1
                self.stop_ev.wait(0.2)
        except BaseException as e:  # noqa: B902 - reported by finish()
            self.error = e

    def finish(self):
        self.stop_ev.set()
        self.join()
        if self.error is not None:
            fail(f'cache sampler failed: {self.error!r}')
        limit = SLACK * CACHE_SIZE
        log(f'mail cache: at most {self.max_disk} bytes on disk, '
            f'{self.max_stat} counted ({self.samples} samples, cap '
            f'{CACHE_SIZE})')
        if self.samples < 20:
            fail(f'only {self.samples} cache samples')
        if self.max_disk > limit or self.max_stat > limit:
            fail(f'the mail cache grew past 1.05 x its cap {CACHE_SIZE}: '
                 f'{self.max_disk} bytes on disk, {self.max_stat} counted')


def delta(before, after, key):
    return after[key] - before[key]


def read_users(dc, users, model, sent, clients=4):
    """Every folder of users checked against model by `clients` IMAP
    clients, each taking the next user in order."""
    lock = threading.Lock()
    todo = list(users)

    def work(_):
        while True:
            with lock:
                if not todo:
                    return
                user = todo.pop(0)
            with Imap(dc.imap_port, user) as c:
                for folder, exp in model[user].items():
                    check_folder(c, folder, exp, sent)
    run_threads(work, range(clients))


def set_flags(dc, user, model):
    """\\Flagged $Custom1 on the first 3 INBOX mails, \\Seen on the next 2,
    \\Answered on the first Archive mail."""
    with Imap(dc.imap_port, user) as c:
        for folder, flags, first, n in (('INBOX', f'\\Flagged {CUSTOM}', 0, 3),
                                        ('INBOX', '\\Seen', 3, 2),
                                        ('Archive', '\\Answered', 0, 1)):
            c.select(folder)
            bodies = c.fetch_bodies()
            uids = sorted(bodies)[first:first + n]
            if len(uids) != n:
                fail(f'{user} {folder}: fewer than {first + n} mails')
            c.store(uidset(uids), '+FLAGS', flags)
            for u in uids:
                model[user][folder][message_id(bodies[u])] |= set(
                    flags.split())


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            fail(f'{what}: not within {timeout} s')
        time.sleep(0.2)


def run(name, port_offset):
    # a short directory name: Dovecot's unix socket paths must fit
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    os.environ['OBOXFS_DOVECOT_USERS'] = str(NUSERS)
    url, opts = store_setup(env, 'file')
    opts += [f'cache_size={CACHE_SIZE // 1024 // 1024}M',
             f'metacache_size={META_SIZE // 1024}K', 'metacache_idle=15']
    users = [user_name(i) for i in range(1, NUSERS + 1)]
    count = VOLUME * 2 // (MIN_SIZE + MAX_SIZE)
    mails = make_mails(users, count, seed=36, tag='sc', min_size=MIN_SIZE,
                       max_size=MAX_SIZE)
    volume = sum(len(m.data) for m in mails)
    sent = {m.msgid: m for m in mails}
    model = {u: {'INBOX': {}, 'Archive': {}} for u in users}
    for i, m in enumerate(mails):
        folder = 'INBOX'
        if (i // NUSERS) % 4 == 3:  # LMTP to user+Archive@...: Archive
            folder = 'Archive'
            m.user = m.user.replace('@', '+Archive@')
        model[user_name(i % NUSERS + 1)][folder][m.msgid] = set()
    log(f'{len(mails)} mails, {volume / 1048576:.1f} MiB for {NUSERS} users '
        f'({volume / CACHE_SIZE:.1f} x cache_size)')
    cache = env.path('cache')
    mp = env.path('mnt')
    with OboxfsMount(env, url, mp, cache, opts) as mnt:
        sampler = Sampler(mnt, os.path.join(cache, 'mail'))
        sampler.start()
        try:
            with Dovecot(env, mp, 'maildir', rundir=env.path('dc'),
                         extra_conf=EXTRA_CONF) as dc:
                def mkfolder(user):
                    with Imap(dc.imap_port, user) as c:
                        create_folder(c, 'Archive')
                run_threads(mkfolder, users)
                t = deliver_parallel(dc.lmtp_port, mails, senders=4)
                log(f'delivered {len(mails)} mails in {t:.1f} s')
                for u in users[:FLAGGED_USERS]:
                    set_flags(dc, u, model)
                s0 = mnt.stats()
                log(f'after delivery: metacache {s0["oboxfs_metacache_bytes"]}'
                    f' bytes ({s0["oboxfs_metacache_users"]} users), '
                    f'{s0["oboxfs_metacache_evictions_total"]} evictions')

                t0 = time.monotonic()
                read_users(dc, users[FLAGGED_USERS:], model, sent)
                s1 = mnt.stats()
                log(f'read back user{FLAGGED_USERS + 1}..user{NUSERS} in '
                    f'{time.monotonic() - t0:.1f} s')
                flagged = [os.path.join(cache, 'meta', u)
                           for u in users[:FLAGGED_USERS]]
                wait_for('metacache eviction of user1..user'
                         f'{FLAGGED_USERS} (idle, flags uploaded)',
                         lambda: not any(map(os.path.exists, flagged)), 45)
                s2 = mnt.stats()
                read_users(dc, users[:FLAGGED_USERS], model, sent, clients=3)
                s3 = mnt.stats()
                log(f'user1..user{FLAGGED_USERS}: evicted, loaded again with '
                    'mails and flags intact')

                misses = delta(s0, s3, 'oboxfs_mailcache_misses_total')
                gets = delta(s0, s3, 'requests_get')
                got = delta(s0, s3, 'bytes_in')
                log(f'read phase: {misses} mail cache misses, '
                    f'{delta(s0, s3, "oboxfs_mailcache_hits_total")} hits, '
                    f'{delta(s0, s3, "oboxfs_mailcache_evictions_total")} '
                    f'evictions, {gets} GETs, {got} bytes in')
                if misses <= 0 or gets < misses // 2 or \
                        got < volume - SLACK * CACHE_SIZE:
                    fail(f'reading {volume} bytes back through a '
                         f'{CACHE_SIZE} byte cache: {misses} misses, {gets} '
                         f'GETs, {got} bytes from the store')
                loaded = delta(s2, s3, 'index_users_loaded')
                if loaded < FLAGGED_USERS:
                    fail(f'index_users_loaded grew by {loaded} when the '
                         f'{FLAGGED_USERS} evicted users were read')
                ev = s3['oboxfs_metacache_evictions_total']
                if ev <= 0 or s3['oboxfs_metacache_evicted_bytes_total'] <= 0:
                    fail(f'no metacache eviction: {ev}')

                def meta_small():
                    return mnt.stats()['oboxfs_metacache_bytes'] <= \
                        SLACK * META_SIZE
                wait_for(f'metacache at most 1.05 x {META_SIZE} bytes once '
                         'all users are idle', meta_small, 45)
                s4 = mnt.stats()
                log(f'metacache: {s4["oboxfs_metacache_bytes"]} bytes '
                    f'({s4["oboxfs_metacache_users"]} users) of '
                    f'{s4["oboxfs_metacache_cap_bytes"]}, '
                    f'{s4["oboxfs_metacache_evictions_total"]} evictions '
                    f'({s4["oboxfs_metacache_evicted_bytes_total"]} bytes), '
                    f'{s4["index_users_loaded"]} user loads, over cap '
                    f'{s4["oboxfs_metacache_over_cap_total"]} times')
                if s4['oboxfs_metacache_cap_bytes'] != META_SIZE or \
                        s4['oboxfs_mailcache_cap_bytes'] != CACHE_SIZE:
                    fail('the caps in the stats are not the mount options')
        finally:
            sampler.stop_ev.set()
        sampler.finish()
        mnt.stop()
    objs = [k for k, _ in Store(url).list() if MAIL_KEY_RE.match(k)]
    if len(objs) != len(mails):
        fail(f'{len(objs)} mail objects in the store, {len(mails)} mails')


if __name__ == '__main__':
    main_wrapper('test_dovecot_small_caches', run, 36)
