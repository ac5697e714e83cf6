/* posix-list.h: listing for the file:// store: walking the directories below
 * the root in key order, with or without the "/" delimiter. */
#ifndef OBOXFS_POSIX_LIST_H
#define OBOXFS_POSIX_LIST_H

#include "objstore.h"

/* List the objects in the directory dfd (with the delimiter: and its
   subdirectories holding objects as prefixes; without: all objects below it)
   whose names start with name_prefix, in key order.  The callback gets the
   keys dir_key + name; dir_key is "" or ends with '/'.  top: dfd is the store
   root, whose temporary directory is skipped.  Symlinks, special files and
   names that are no valid key are skipped.  start_after (NULL: none;
   only without the delimiter): keys <= it are skipped, and directories
   holding only such keys are not read.  Returns 0 (also when the
   callback stopped the listing) or -1 with errno. */
int posix_list_dir(int dfd, const char *dir_key, const char *name_prefix,
		   bool top, bool delimiter, const char *start_after,
		   objstore_list_cb *callback, void *context);

#endif
