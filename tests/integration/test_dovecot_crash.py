#!/usr/bin/python3
"""test_dovecot_crash.py: acknowledged mail survives a daemon crash
(CONTRACT §5): deliver, flag, copy and expunge on an oboxfs mount of a
file:// store, stop Dovecot, SIGKILL oboxfs, mount again with the same cache
dir, start Dovecot: every mail is there with the same bytes (flags may be
lost), and after a clean unmount the store holds exactly the mails.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 15 .. + 17."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402

dovecot_scenario.main_wrapper('test_dovecot_crash',
                              dovecot_scenario.run_remount, 'maildir', 'file',
                              15, 'crash')
