#!/usr/bin/python3
"""test_dovecot_takeover_killed_sdbox_on_s3.py: the takeover-after-SIGKILL
scenario of test_dovecot_takeover_killed_on_s3.py with sdbox: uploaded
state on a second mount with an empty cache dir, then mails delivered
without any upload put back after a second SIGKILL.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 33 .. + 35."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_dovecot_takeover_killed_on_s3 as takeover  # noqa: E402
from dovecot_scenario import main_wrapper  # noqa: E402

main_wrapper('test_dovecot_takeover_killed_sdbox_on_s3', takeover.run,
             'sdbox', 33)
