/* pathopen.h: opening a path below a directory of the metacache without
 * following a symlink anywhere on the way.
 *
 * The daemon runs as root; a user's tree may hold symlinks (made through
 * the mount, or restored from a bundle, which is untrusted input), and
 * openat(dirfd, "a/b/c", O_NOFOLLOW) only refuses a symlink as the last
 * component.  pathopen() refuses one anywhere (ELOOP; ENOTDIR for a last
 * one opened with O_DIRECTORY), and ".." or an absolute path (EXDEV): openat2() with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS, or a walk one component at a time where the
 * kernel lacks openat2().
 */
#ifndef OBOXFS_PATHOPEN_H
#define OBOXFS_PATHOPEN_H

/* openat(dirfd, path, flags) under those rules ("" or "." is dirfd
   itself); O_CLOEXEC is added.  Returns the fd or -1 with errno. */
int pathopen(int dirfd, const char *path, int flags);
/* The one-component-at-a-time walk pathopen() falls back on (for tests;
   path already checked: relative, no ".."). */
int pathopen_walk(int dirfd, const char *path, int flags);

#endif
