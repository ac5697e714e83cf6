#!/usr/bin/python3
"""test_dovecot_remount.py: deliver, set flags, copy and expunge on an oboxfs
mount of a file:// store; stop Dovecot, unmount, mount again with the same
cache dir and store, start Dovecot: every mail (same bytes), flag and folder
is still there, and the store holds exactly the mails (dovecot_scenario.py).
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 9 .. + 11."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402

dovecot_scenario.main_wrapper('test_dovecot_remount',
                              dovecot_scenario.run_remount, 'maildir', 'file', 9,
                              'same-cache')
