#!/usr/bin/python3
"""test_dovecot_fresh_cache.py: a second machine (CONTRACT §6): deliver,
flag, copy and expunge on an oboxfs mount of a file:// store, stop Dovecot,
unmount, mount the same store with an EMPTY cache dir, start Dovecot: every
mail (same bytes), flag and folder is there, from the store alone.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 12 .. + 14."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402

dovecot_scenario.main_wrapper('test_dovecot_fresh_cache',
                              dovecot_scenario.run_remount, 'maildir', 'file',
                              12, 'fresh-cache')
