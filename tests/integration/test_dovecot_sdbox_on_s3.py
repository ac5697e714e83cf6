#!/usr/bin/python3
"""test_dovecot_sdbox_on_s3.py: stock Dovecot (sdbox) on an oboxfs mount of a fresh
S3 (local Swift) store: parallel LMTP deliveries, IMAP and POP3 read-back,
flags, COPY/MOVE/EXPUNGE, folder CREATE/RENAME/DELETE with several clients at
once, then the store and Dovecot's log are checked (dovecot_scenario.py).
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 18 .. + 20."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402

dovecot_scenario.main_wrapper('test_dovecot_sdbox_on_s3', dovecot_scenario.run_main,
                              'sdbox', 's3', 18)
