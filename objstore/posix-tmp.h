/* posix-tmp.h: the file:// store's temporary directory <root>/.oboxfs-tmp:
 * unique temporary files for atomic writes, and removal of the stale ones a
 * crashed writer left behind. */
#ifndef OBOXFS_POSIX_TMP_H
#define OBOXFS_POSIX_TMP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define POSIX_TMP_DIR_NAME ".oboxfs-tmp"
/* a temporary file not modified for this long is left over from a crash */
#define POSIX_TMP_STALE_SECS 3600

/* Create a new file (mode 0600) with a unique name in the directory tmp_fd
   and open it for writing.  The name goes to name (name_size >= 64).
   Returns the fd, or -1 with errno. */
int posix_tmp_create(int tmp_fd, _Atomic uint64_t *counter, char *name,
		     size_t name_size);

/* Remove the files (not directories) in the directory tmp_fd that were last
   modified before the time older_than.  Best effort: files that vanish or
   cannot be removed are skipped.  Returns how many were removed, or -1 with
   errno if the directory cannot be read. */
int posix_tmp_clean(int tmp_fd, time_t older_than);

#endif
