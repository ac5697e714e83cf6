#!/usr/bin/python3
"""test_dovecot_request_counts.py: what operators pay for (CONTRACT §8), at
the default settings (no upload options), maildir on a file:// store, as
counted by the daemon in MOUNTPOINT/.oboxfs-stats.

Warm-up: 20 LMTP deliveries to each of 2 users.  Then 200 deliveries (100
each): once no folder upload is queued any more, the store requests (the
sum of every requests_* counter) per delivery must be at most 1.1.  Then a
warm IMAP login, SELECT, FETCH of every (cached) mail, STORE of flags,
STATUS and reading .oboxfs-stats must cost no request at all.  The figures
are printed.  The sdbox variant is test_dovecot_request_counts_sdbox.py.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 27 .. + 29 (sdbox: + 30)."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dovecot_scenario import (final_checks, main_wrapper,  # noqa: E402
                              store_setup)
from mailtest import (Dovecot, OboxfsMount, Store, TestEnv,  # noqa: E402
                      deliver_parallel, fail, log, make_mails,
                      request_counts, user_name)

WARMUP = 20  # per user
STREAM = 200  # in all
MAX_PER_DELIVERY = 1.1


def requests(counts):
    return sum(counts.values())


def figures(counts):
    return ', '.join(f'{k[len("requests_"):]} {v}'
                     for k, v in sorted(counts.items())) or 'none'


def free_ops(mnt, dc, users, nmails):
    """Warm login + SELECT + FETCH + STORE + STATUS + stats: no request."""
    before = mnt.stats()
    with dc.imap(users[0]) as c:
        c.status('INBOX')
        n = c.select('INBOX')
        if n != nmails:
            fail(f'{users[0]}: INBOX has {n} mails, expected {nmails}')
        bodies = c.fetch_bodies()
        if len(bodies) != nmails:
            fail(f'{users[0]}: FETCH gave {len(bodies)} bodies of {nmails}')
        c.store('1:*', '+FLAGS', '\\Seen')
        c.store('1:10', '+FLAGS', '\\Flagged $Custom1')
        c.store('5:7', '-FLAGS', '\\Seen')
        c.fetch_flags()
        c.status('INBOX')
        c.ok('noop')
    with dc.imap(users[1]) as c:
        c.status('INBOX')
    for _ in range(3):
        mnt.stats()
    after = mnt.stats()
    used = request_counts(before, after)
    log(f'FIGURE warm login + SELECT + FETCH of {nmails} cached mails + '
        f'STORE + STATUS + stats: {requests(used)} requests ({figures(used)})')
    if used:
        fail(f'warm login, FETCH of cached mails, flag changes, STATUS and '
             f'.oboxfs-stats cost {requests(used)} store requests: '
             f'{figures(used)}')


def run(name, fmt, port_offset):
    # a short directory name: Dovecot's unix socket paths must fit
    env = TestEnv(name.replace('test_dovecot_', ''), port_offset)
    env.fresh_dir()
    url, opts = store_setup(env, 'file')
    users = [user_name(i) for i in range(1, 3)]
    warm = make_mails(users, WARMUP * len(users), seed=27, tag=name,
                      max_size=8 * 1024)
    stream = make_mails(users, STREAM, seed=28, tag=name + '-s',
                        max_size=8 * 1024)
    with OboxfsMount(env, url, env.path('mnt'), env.path('cache'),
                     opts) as mnt:
        with Dovecot(env, mnt.mountpoint, fmt, rundir=env.path('dc')) as dc:
            deliver_parallel(dc.lmtp_port, warm, senders=2)
            before = mnt.wait_uploads_idle()
            log(f'warm-up: {len(warm)} deliveries, '
                f'{before["index_folder_uploads"]} folder uploads, '
                f'{requests(request_counts({}, before))} requests')
            t = deliver_parallel(dc.lmtp_port, stream, senders=4)
            after = mnt.wait_uploads_idle()
            used = request_counts(before, after)
            per = requests(used) / len(stream)
            uploads = (after['index_folder_uploads'] -
                       before['index_folder_uploads'])
            log(f'FIGURE {fmt}: {len(stream)} deliveries in {t:.1f} s cost '
                f'{requests(used)} store requests = {per:.3f} per delivery '
                f'({figures(used)}; {uploads} folder uploads, '
                f'{after["index_diffs_stored"] - before["index_diffs_stored"]}'
                f' diffs, '
                f'{after["index_bases_stored"] - before["index_bases_stored"]}'
                ' bases)')
            if after['mails_stored'] - before['mails_stored'] != len(stream):
                fail(f'mails_stored grew by '
                     f'{after["mails_stored"] - before["mails_stored"]}, '
                     f'expected {len(stream)}')
            if per > MAX_PER_DELIVERY:
                fail(f'{per:.3f} store requests per delivery, more than '
                     f'{MAX_PER_DELIVERY} ({figures(used)})')
            free_ops(mnt, dc, users, WARMUP + STREAM // len(users))
            # for the record: the full pass that uploads the flag changes
            # and deletes the superseded bundles (every upload_interval)
            s0 = mnt.stats()
            s1 = mnt.upload_now()
            used = request_counts(s0, s1)
            log(f'FIGURE {fmt}: the next full upload pass (SIGUSR1) cost '
                f'{requests(used)} requests ({figures(used)}; '
                f'{s1["objects_deleted"] - s0["objects_deleted"]} objects '
                'deleted)')
            final_checks(env, dc, mnt, Store(url), fmt)


if __name__ == '__main__':
    main_wrapper('test_dovecot_request_counts', run, 'maildir', 27)
