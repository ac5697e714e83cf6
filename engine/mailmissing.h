/* mailmissing.h: stubs whose objects the store does not have.
 *
 * A mail object can vanish behind this machine's back (another machine's
 * delete during a split brain, an operator, a lifecycle rule).  Opening
 * such a stub fails for that mail only: EIO, logged once per key, counted
 * (mails_missing).  With missing_mails=drop the front end is told
 * (ENODATA from obox_open_setup()) and calls obox_mail_drop(), which
 * removes the stub once a HEAD confirms the object is gone: Dovecot then
 * sees the mail expunged instead of failing every FETCH that touches it.
 */
#ifndef OBOXFS_MAILMISSING_H
#define OBOXFS_MAILMISSING_H

#include <stdint.h>

struct mailmissing;

struct mailmissing_stats {
	uint64_t missing;	/* opens that found the object missing */
	uint64_t dropped;	/* stubs removed for it */
};

/* NULL if out of memory */
struct mailmissing *mailmissing_init(void);
void mailmissing_deinit(struct mailmissing **mm);
/* An open of the stub of key found its object missing: counted, and
   logged the first time for this key. */
void mailmissing_noted(struct mailmissing *mm, const char *key);
void mailmissing_dropped(struct mailmissing *mm, const char *key);
void mailmissing_get_stats(struct mailmissing *mm,
			   struct mailmissing_stats *stats_r);

#endif
