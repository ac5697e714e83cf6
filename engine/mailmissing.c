/* mailmissing.c: counting and logging stubs whose objects are missing, and
 * dropping them (see mailmissing.h, obox_mail_drop() in obox.h). */
#include "lazydir.h"
#include "mailmissing.h"
#include "obox-private.h"
#include "keylist.h"
#include "log.h"
#include "objstore.h"
#include "stub.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* keys logged already; past this many, every further one is logged */
#define MAILMISSING_LOGGED_MAX 10000

struct mailmissing {
	pthread_mutex_t lock;
	struct keylist logged;		/* protected by lock */
	struct mailmissing_stats stats;	/* protected by lock */
};

struct mailmissing *mailmissing_init(void)
{
	struct mailmissing *mm = calloc(1, sizeof(*mm));

	if (mm != NULL)
		pthread_mutex_init(&mm->lock, NULL);
	return mm;
}

void mailmissing_deinit(struct mailmissing **_mm)
{
	struct mailmissing *mm = *_mm;

	if (mm == NULL)
		return;
	*_mm = NULL;
	keylist_clear(&mm->logged);
	pthread_mutex_destroy(&mm->lock);
	free(mm);
}

void mailmissing_noted(struct mailmissing *mm, const char *key)
{
	bool first;

	pthread_mutex_lock(&mm->lock);
	mm->stats.missing++;
	first = !keylist_has(&mm->logged, key);
	if (first && mm->logged.count < MAILMISSING_LOGGED_MAX)
		(void)keylist_add(&mm->logged, key);
	pthread_mutex_unlock(&mm->lock);
	if (first) {
		obox_log(OBOX_LOG_ERR, "mail object %s is missing from the "
			 "store: reads of that mail fail (missing_mails=drop "
			 "removes such mails)\n", key);
	}
}

void mailmissing_dropped(struct mailmissing *mm, const char *key)
{
	pthread_mutex_lock(&mm->lock);
	mm->stats.dropped++;
	pthread_mutex_unlock(&mm->lock);
	obox_log(OBOX_LOG_WARNING, "mail object %s is gone from the store: "
		 "its mail was removed (missing_mails=drop)\n", key);
}

void mailmissing_get_stats(struct mailmissing *mm,
			   struct mailmissing_stats *stats_r)
{
	pthread_mutex_lock(&mm->lock);
	*stats_r = mm->stats;
	pthread_mutex_unlock(&mm->lock);
}

int obox_mail_drop(struct obox *obox, int dir_fd, const char *name, int fd)
{
	struct stat st, named;
	struct objstore_stat ost;
	struct stub stub;
	int ret;

	if (obox->set.missing_mails != OBOX_MISSING_MAILS_DROP)
		return EIO;
	if (fstat(fd, &st) < 0 || fstatat(dir_fd, name, &named,
					  AT_SYMLINK_NOFOLLOW) < 0)
		return errno;
	if (st.st_dev != named.st_dev || st.st_ino != named.st_ino)
		return ENOENT;	/* the name went elsewhere meanwhile */
	ret = stub_read(fd, &st, &stub);
	if (ret < 0)
		return errno;
	if (ret == 0)
		return EIO;	/* not a stub (any more) */
	/* really gone? (not a passing failure of the GET) */
	if (objstore_head(obox->store, stub.key, &ost) == 0) {
		objstore_stat_free(&ost);
		return EIO;
	}
	if (objstore_errcode() != OBJSTORE_ERR_NOT_FOUND)
		return EIO;
	/* a name removed from a lazy directory must not come back from
	   its table (lazydir.h) */
	if (lazydir_expand(obox->lazy, dir_fd) < 0)
		return EIO;
	ret = obox_unlink(obox, dir_fd, name);
	if (ret == 0)
		mailmissing_dropped(obox->missing, stub.key);
	return ret == 0 ? ENOENT : ret;
}
