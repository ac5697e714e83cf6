/* putback-private.h: the metadata check of putback_head(), exposed (and
 * only used outside putback.c) so that fuzz/ can drive it on metadata
 * decoded from untrusted objects. */
#ifndef OBOXFS_PUTBACK_PRIVATE_H
#define OBOXFS_PUTBACK_PRIVATE_H

#include "putback.h"

/* Take mail->st (a HEAD's stat, metadata included) as a mail to put back:
   set path, name, dir_name, dir and mtime.  Returns NULL if usable, else
   why not (a static string). */
const char *putback_mail_from_stat(struct putback_mail *mail);

#endif
