#!/usr/bin/python3
"""test_dovecot_split_brain_sdbox.py: test_dovecot_split_brain's two
machines serving one user at the same time, with sdbox: each machine's
new mails get the same UIDs (u.N names), so the merge puts the other
machine's mails back under the next free ones and marks the folder's index
for Dovecot to rebuild from its files; every mail delivered on either
side is on A, on B and on a third mount with an empty cache, bytes equal,
and so are the folder changes (created on both sides, renamed with a mail
appended to the old name, deleted).  Flags and subscriptions are not
checked here (test_dovecot_split_seeded and test_engine_sdbox_flags check
the sdbox flags merge).  The merge's rebuild mark
waits for the log's lock, held by the test as a Dovecot appending would,
in a child process of the daemon: the daemon itself never has a file of
its own mount open (fs/mountappend.c).
Dovecot ports: those of test_dovecot_split_brain (never run beside it:
tests/CMakeLists.txt)."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot_scenario  # noqa: E402
import test_dovecot_split_brain as split  # noqa: E402

if __name__ == '__main__':
    dovecot_scenario.main_wrapper('test_dovecot_split_brain_sdbox',
                                  split.run, 'sdbox')
