/* maildirkw.h: a maildir folder's keyword list, Dovecot's dovecot-keywords
 * file: lines "<index> <name>", index 0..25 naming the keyword letter
 * 'a' + index in the folder's cur/ names; names are IMAP atoms compared
 * without case, as Dovecot compares them.  Each machine's file is its
 * own, so a letter means a name only with the file of the same machine:
 * a split-brain merge maps the other writer's letters to this machine's
 * by name (splitmerge.c).
 */
#ifndef OBOXFS_MAILDIRKW_H
#define OBOXFS_MAILDIRKW_H

#include <stdbool.h>
#include <stddef.h>

#define MAILDIRKW_FILE "dovecot-keywords"
#define MAILDIRKW_MAX 26
/* the longest file read (26 names of an IMAP client's length) */
#define MAILDIRKW_FILE_MAX 65536

struct maildirkw {
	char *names[MAILDIRKW_MAX];	/* NULL: the letter is free */
	bool changed;			/* a name was added */
};

/* Parse untrusted text into kw (emptied first).  As Dovecot does, lines
   that are not "<index 0..25> <name>" are skipped, and so are names that
   are not atoms (control characters, spaces, over 255 bytes). */
void maildirkw_parse(struct maildirkw *kw, const char *text, size_t len);
/* The file text of kw (lines by index); NULL if out of memory. */
char *maildirkw_format(const struct maildirkw *kw, size_t *len_r);
void maildirkw_clear(struct maildirkw *kw);

/* The name of keyword letter c ('a'..'z') in kw, or NULL. */
const char *maildirkw_name(const struct maildirkw *kw, char c);
/* The letter of name in kw; if kw lacks it and may_add, it is added at
   the first free index (kw->changed).  0 if absent (and not added: no
   may_add, all 26 taken, out of memory). */
char maildirkw_letter(struct maildirkw *kw, const char *name, bool may_add);

/* Read dir_fd's MAILDIRKW_FILE into kw: 0 (an absent file is an empty
   list), -1 with errno. */
int maildirkw_read(int dir_fd, struct maildirkw *kw);
/* Write kw as dir_fd's MAILDIRKW_FILE (smallfile_rewrite(): in place,
   its mtime moved on; the caller drops the kernel's view of it).  0, or
   -1 with errno. */
int maildirkw_write(int dir_fd, const struct maildirkw *kw);

#endif
