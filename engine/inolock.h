/* inolock.h: one reader/writer lock per inode number, made on demand.
 *
 * Writes through a handle hold their inode's lock shared; turning a file
 * into a stub and back (mailstore_store(), mailstore_unstub()) and the name
 * operations deciding a mail's fate hold it exclusive.  Unrelated inodes
 * never wait for each other (no striping), so an index write never stalls
 * behind another file's PUT.
 */
#ifndef OBOXFS_INOLOCK_H
#define OBOXFS_INOLOCK_H

#include <stdbool.h>
#include <sys/types.h>

struct inolock_table;

struct inolock_table *inolock_init(void);
void inolock_deinit(struct inolock_table **table);

/* Lock inode ino, shared or exclusive.  Always succeeds (aborts if out of
   memory: there is no way to go on without the lock). */
void inolock_lock(struct inolock_table *table, ino_t ino, bool exclusive);
void inolock_unlock(struct inolock_table *table, ino_t ino);

#endif
