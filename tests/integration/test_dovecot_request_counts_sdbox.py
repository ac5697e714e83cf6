#!/usr/bin/python3
"""test_dovecot_request_counts_sdbox.py: the request counts of
test_dovecot_request_counts.py with sdbox: at most 1.1 store requests per
steady-state LMTP delivery at the default settings; a warm login, FETCH of
cached mails, flag changes, STATUS and stats cost none.
Dovecot ports: OBOXFS_TEST_DOVECOT_PORT + 30 .. + 32."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_dovecot_request_counts as counts  # noqa: E402
from dovecot_scenario import main_wrapper  # noqa: E402

main_wrapper('test_dovecot_request_counts_sdbox', counts.run, 'sdbox', 30)
