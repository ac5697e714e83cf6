#!/usr/bin/python3
"""test_fs_cache_tmpfs_full.py: a cache directory on a disk that fills up
(a 16 MB tmpfs, cache_size left at its default 1G: larger than the disk)
loses no mail and fails cleanly (CONTRACT §5, §7).  maildir, file:// store,
4 users, every LMTP outcome recorded.

A. 60 mails of 400 KB - 1 MB (about 42 MB) from 4 senders: the mail cache
   fills the disk.  It only holds copies, so it must give way: every
   delivery is acknowledged.
B. A plain write of 24 MB into Maildir/tmp through the mount (the disk full
   of what cannot be evicted) fails with ENOSPC or EIO; the file is kept.
   8 more deliveries from 2 senders: at least one is refused.
C. The file is removed and all mail of user3 and user4 expunged; 8 smaller
   mails delivered one at a time are all acknowledged.
Throughout: every refusal is a temporary LMTP error (4xx), never 5xx or a
dropped connection; after each phase every acknowledged (and not expunged)
mail is in its INBOX over IMAP with the bytes sent, and nothing else but
refused mails (intact); the daemon stays up, exits cleanly, and its log
names the full disk (a line matching "No space left", "disk full" or
"ENOSPC"); Dovecot logs no error other than "No space left on device"
ones.  Mounted again with a fresh cache directory (on the normal disk):
the same IMAP check.  Every problem found is reported at the end, together.
The tmpfs is unmounted at the end, also on failure.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 39 .. + 41."""
import errno
import os
import re
import smtplib
import subprocess
import sys
import threading

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import folder_state, main_wrapper, store_setup  # noqa: E402
from mailtest import (HOST, Dovecot, Imap, OboxfsMount, TestEnv,  # noqa: E402
                      add_cleanup, check_delivered, fail, log, make_mails,
                      remove_cleanup, run_threads, user_name)

TMPFS_SIZE = '16m'
NUSERS = 4
FILL_MAILS = 60
FULL_MAILS = 8
MIN_SIZE, MAX_SIZE = 400 * 1024, 1024 * 1024
AFTER_MAILS = 8
AFTER_MIN, AFTER_MAX = 50 * 1024, 250 * 1024
TOO_BIG = 24 * 1024 * 1024  # more than the whole tmpfs
FULL_RE = re.compile(r'(?i)no space left|disk full|disk is full|ENOSPC')


def mount_tmpfs(path):
    os.makedirs(path)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={TMPFS_SIZE}',
                    'tmpfs', path], check=True)

    def umount():
        if os.path.ismount(path) and \
                subprocess.run(['umount', path]).returncode != 0:
            subprocess.run(['umount', '-l', path])
    return add_cleanup(f'umount tmpfs {path}', umount), umount


def deliver_recording(port, mails, senders):
    """Deliver mails from `senders` LMTP sessions, recording each outcome:
    {msgid: 'ok' | (code, message) | ('exception', repr)}."""
    out = {}
    lock = threading.Lock()

    def work(chunk):
        c = None
        for m in chunk:
            try:
                if c is None:
                    c = smtplib.LMTP(HOST, port, timeout=120)
                refused = c.sendmail('sender@example.org', [m.user], m.data,
                                     mail_options=['BODY=8BITMIME'])
                res = 'ok' if not refused else next(iter(refused.values()))
            except smtplib.SMTPRecipientsRefused as e:
                res = next(iter(e.recipients.values()))
            except smtplib.SMTPResponseException as e:
                res = (e.smtp_code, e.smtp_error)
            except (smtplib.SMTPException, OSError) as e:
                res = ('exception', repr(e))
                c = None
            with lock:
                out[m.msgid] = res
        if c is not None:
            try:
                c.quit()
            except (smtplib.SMTPException, OSError):
                pass
    run_threads(work, [mails[i::senders] for i in range(senders)])
    return out


def check_users(what, dc, users, required, allowed, sent, problems):
    """Each user's INBOX holds every mail of required[user], each read back
    equal to what was sent, and nothing outside allowed[user]."""
    def one(user):
        with Imap(dc.imap_port, user) as c:
            got = folder_state(c, 'INBOX')
        missing = sorted(required[user] - set(got))
        if missing:
            problems.append(f'{what}: {user}: {len(missing)} of '
                            f'{len(required[user])} acknowledged mails '
                            f'missing, e.g. {missing[:3]}')
        extra = sorted(set(got) - allowed[user])
        if extra:
            problems.append(f'{what}: {user}: unexpected mails {extra[:3]}')
        for mid, (_, body) in got.items():
            if mid in sent:
                try:
                    check_delivered(body, sent[mid], f'{what} {user}')
                except Exception as e:  # noqa: B902 - collected
                    problems.append(str(e))
    run_threads(one, users)


def write_too_big(path):
    """A plain write through the mount of more than the whole cache disk
    into Maildir/tmp must fail with ENOSPC or EIO.  The file is kept (it
    holds what it got of the disk).  Returns a problem or None."""
    chunk = b'x' * (1024 * 1024)
    err = None
    try:
        with open(path, 'wb') as f:
            for _ in range(TOO_BIG // len(chunk)):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        err = e
    if err is None:
        return (f'writing {TOO_BIG} bytes to {path} on a {TMPFS_SIZE} cache '
                'disk succeeded')
    if err.errno not in (errno.ENOSPC, errno.EIO):
        return f'writing {TOO_BIG} bytes to {path}: {err!r}, expected ENOSPC or EIO'
    log(f'writing {TOO_BIG} bytes into Maildir/tmp: {err}')
    return None


def deliveries(what, dc, mails, senders, sent, required, allowed, problems):
    """Deliver mails recording each outcome; refusals must be 4xx.  Updates
    required/allowed (acknowledged / sent mails per user); returns the
    refusals {msgid: reply}."""
    res = deliver_recording(dc.lmtp_port, mails, senders)
    refused = {mid: r for mid, r in res.items() if r != 'ok'}
    for m in mails:
        sent[m.msgid] = m
        allowed[m.user].add(m.msgid)
        if m.msgid not in refused:
            required[m.user].add(m.msgid)
    log(f'{what}: {len(mails) - len(refused)} of {len(mails)} deliveries '
        f'acknowledged, {len(refused)} refused')
    for r in sorted({str(r)[:160] for r in refused.values()})[:3]:
        log(f'  refusal: {r}')
    bad = [r for r in refused.values()
           if not (isinstance(r[0], int) and 400 <= r[0] < 500)]
    if bad:
        problems.append(f'{what}: {len(bad)} deliveries failed with other '
                        f'than a temporary (4xx) error, e.g. {bad[0]}')
    return refused


def disk_state(tmpfs, mnt):
    st = os.statvfs(tmpfs)
    s = mnt.stats()
    return (f'tmpfs free {st.f_bavail * st.f_frsize} bytes, mail cache '
            f'{s["oboxfs_mailcache_bytes"]} bytes in '
            f'{s["oboxfs_mailcache_entries"]} entries'), s


def expunge_all(dc, user):
    with Imap(dc.imap_port, user) as c:
        if c.select('INBOX') > 0:
            c.store('1:*', '+FLAGS.SILENT', '\\Deleted')
            c.ok('expunge')
        if c.select('INBOX') != 0:
            fail(f'{user}: INBOX not empty after EXPUNGE')


def dovecot_errors(dc):
    """Error/Panic/Fatal lines of Dovecot's log other than ENOSPC ones."""
    return [ln for ln in dc.log_problems()
            if not re.search(r'No space left on device', ln) or
            re.search(r'\b(Panic|Fatal):', ln)]


def run(name, port_offset):
    env = TestEnv(name.replace('test_fs_', ''), port_offset)
    tmpfs = env.path('tmpfs')
    if os.path.ismount(tmpfs):  # left by a killed run
        subprocess.run(['umount', '-l', tmpfs], check=True)
    env.fresh_dir()
    url, opts = store_setup(env, 'file')
    users = [user_name(i) for i in range(1, NUSERS + 1)]
    fill = make_mails(users, FILL_MAILS, seed=39, tag='full',
                      min_size=MIN_SIZE, max_size=MAX_SIZE)
    full = make_mails(users, FULL_MAILS, seed=40, tag='fullb',
                      min_size=MIN_SIZE, max_size=MAX_SIZE)
    after = make_mails(users, AFTER_MAILS, seed=41, tag='after',
                       min_size=AFTER_MIN, max_size=AFTER_MAX)
    sent, problems = {}, []
    required = {u: set() for u in users}  # acknowledged, not expunged
    allowed = {u: set() for u in users}   # sent, not expunged
    mnt = OboxfsMount(env, url, env.path('mnt'),
                      os.path.join(tmpfs, 'cache'), opts)
    # not "with dc": its log has the ENOSPC errors, checked below
    dc = Dovecot(env, mnt.mountpoint, 'maildir', rundir=env.path('dc'))
    cleanup, umount = mount_tmpfs(tmpfs)
    try:
        with mnt:
            dc.start()
            # A: the mail cache (cap 1G) fills the disk
            refused = deliveries('A, cache larger than the disk', dc, fill,
                                 4, sent, required, allowed, problems)
            state, s = disk_state(tmpfs, mnt)
            log(f'A: {state}')
            if refused:
                problems.append(
                    f'A: {len(refused)} of {len(fill)} deliveries refused '
                    f'(ENOSPC writing Maildir/tmp) while the mail cache, '
                    f'cap {s["oboxfs_mailcache_cap_bytes"]} on a '
                    f'{TMPFS_SIZE} disk, held evictable objects ({state}): '
                    'the cache does not give way to deliveries')
            check_users('A', dc, users, required, allowed, sent, problems)

            # B: the disk full of what cannot be evicted (a mail being
            # written in tmp/)
            big = os.path.join(mnt.mountpoint, users[0], 'Maildir', 'tmp',
                               'too-big')
            p = write_too_big(big)
            if p:
                problems.append('B: ' + p)
            refused = deliveries('B, disk full', dc, full, 2, sent, required,
                                 allowed, problems)
            log(f'B: {disk_state(tmpfs, mnt)[0]}')
            if not refused:
                fail(f'the {TMPFS_SIZE} tmpfs was not full: after a write '
                     f'of {TOO_BIG} bytes failed, all {len(full)} '
                     'deliveries were acknowledged')
            if mnt.proc.poll() is not None:
                fail(f'oboxfs exited with status {mnt.proc.poll()} when the '
                     'cache disk filled')
            check_users('B', dc, users, required, allowed, sent, problems)

            # C: deleting mail makes room again
            os.unlink(big)
            for u in users[2:]:
                expunge_all(dc, u)
                required[u], allowed[u] = set(), set()
            log(f'C: removed tmp/too-big, expunged all mail of '
                f'{", ".join(users[2:])}; {disk_state(tmpfs, mnt)[0]}')
            refused = deliveries('C, after deleting mail', dc, after, 1,
                                 sent, required, allowed, problems)
            if refused:
                problems.append(f'C: after deleting mail {len(refused)} of '
                                f'{len(after)} deliveries still failed, e.g. '
                                f'{next(iter(refused.values()))}')
            check_users('C', dc, users, required, allowed, sent, problems)
            dc.stop()
            errs = dovecot_errors(dc)
            if errs:
                problems.append('Dovecot log errors other than "No space '
                                'left on device":\n    ' +
                                '\n    '.join(errs[:10]))
            if mnt.proc.poll() is not None:
                fail(f'oboxfs exited with status {mnt.proc.poll()}')
            with open(mnt.log_path, 'rb') as f:
                lines = [ln for ln in f.read().decode(
                    'utf-8', 'replace').splitlines() if FULL_RE.search(ln)]
            if lines:
                log(f'daemon log on the full disk: {lines[0]}')
            else:
                problems.append('the daemon log has no line about the full '
                                'cache disk (nothing matching '
                                f'{FULL_RE.pattern}), although deliveries '
                                'and writes failed with ENOSPC')
    finally:
        dc.stop()
        umount()
        remove_cleanup(cleanup)

    mnt2 = OboxfsMount(env, url, env.path('mnt'), env.path('cache-fresh'),
                       opts, log_path=env.path('oboxfs-fresh.log'))
    with mnt2, Dovecot(env, mnt2.mountpoint, 'maildir',
                       rundir=env.path('dc2')) as dc2:
        check_users('fresh cache dir', dc2, users, required, allowed, sent,
                    problems)
        log('fresh cache dir: every acknowledged mail read back')
    if problems:
        fail(f'{len(problems)} problems:\n  - ' + '\n  - '.join(problems))


if __name__ == '__main__':
    main_wrapper('test_fs_cache_tmpfs_full', run, 39)
