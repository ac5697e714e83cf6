/* rmtree.h: removing a directory tree of the cache directory (discarded,
 * evicted or half-loaded user trees, the trash). */
#ifndef OBOXFS_RMTREE_H
#define OBOXFS_RMTREE_H

#include <stdbool.h>

/* rm -rf path, not following symlinks nor crossing into other file
   systems' mounts; failures are logged (quiet: not logged) and skipped. */
void rmtree(const char *path, bool quiet);
/* rmtree() of name in the directory dir_fd */
void rmtree_at(int dir_fd, const char *name, bool quiet);

#endif
