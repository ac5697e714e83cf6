/* sdboxflags.h: the flags and keywords of an sdbox folder's mails, as its
 * Dovecot index files say (Dovecot 2.3: dovecot.index's records and its
 * "keywords" extension, then the records of dovecot.index.log.2 and
 * dovecot.index.log after the index's log position: APPEND,
 * FLAG_UPDATE, KEYWORD_UPDATE, KEYWORD_RESET); sdbox keeps them nowhere
 * else.  A split-brain merge reads both writers' (sdboxmerge.h).
 *
 * The files are untrusted (a bundle from the store, a half-written log):
 * every read is bounded, what does not parse is skipped (a log record
 * that does not fit ends that log), and the work is bounded too (mails
 * only ever appended in UID order, a budget for the logs' UID ranges:
 * past it the state is "incomplete").  Expunges are not followed: a mail
 * is found by the u.N file of a stub, and a UID is never given twice.
 * At most SDBOXFLAGS_KEYWORDS_MAX keywords per folder are kept (a folder
 * with more: the others are not seen).
 *
 * No shared state: a struct sdboxflags is its caller's.
 */
#ifndef OBOXFS_SDBOXFLAGS_H
#define OBOXFS_SDBOXFLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bundle_tree;

#define SDBOXFLAGS_KEYWORDS_MAX 256
#define SDBOXFLAGS_KW_WORDS (SDBOXFLAGS_KEYWORDS_MAX / 64)

struct sdboxflags_mail {
	uint32_t uid;
	uint8_t flags;		/* DOVECOTFMT_MAIL_FLAGS bits */
	uint64_t keywords[SDBOXFLAGS_KW_WORDS];	/* bit i: keywords[i] */
};

struct sdboxflags {
	struct sdboxflags_mail *mails;	/* sorted by uid */
	size_t count, alloc;
	char *keywords[SDBOXFLAGS_KEYWORDS_MAX];	/* names */
	unsigned int keyword_count;
	/* the files said more than was followed (mails out of UID order,
	   the bound of mails, or of the work the logs' ranges take): what
	   this says may be wrong, a merge does not use it */
	bool incomplete;
	uint64_t work;
};

/* The state the files' bytes give (any may be NULL/0: missing). */
void sdboxflags_parse(struct sdboxflags *f, const unsigned char *index,
		      size_t index_size, const unsigned char *log2,
		      size_t log2_size, const unsigned char *log,
		      size_t log_size);
/* The same from dbox_fd's files (a folder's dbox-Mails on disk): 0, or
   -1 with errno (a file that exists could not be read; f is empty). */
int sdboxflags_read(int dbox_fd, struct sdboxflags *f);
/* The same from a bundle tree's copies of dir's files (dir: the
   dbox-Mails path in tree). */
void sdboxflags_from_tree(const struct bundle_tree *tree, const char *dir,
			  struct sdboxflags *f);
void sdboxflags_free(struct sdboxflags *f);

/* the mail with uid, or NULL */
const struct sdboxflags_mail *sdboxflags_find(const struct sdboxflags *f,
					      uint32_t uid);
/* mail has keyword i */
int sdboxflags_has_keyword(const struct sdboxflags_mail *mail, unsigned int i);
/* the index of keyword name in f (compared without case, as IMAP does),
   or -1 */
int sdboxflags_keyword_index(const struct sdboxflags *f, const char *name);

#endif
