/* ids.h: unique ids (OIDs, folder GUIDs) and the user-name hash (the
 * store keys made of them: keys.h). */
#ifndef OBOXFS_IDS_H
#define OBOXFS_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 128-bit ids are written as 32 lowercase hex digits */
#define IDS_HEX_LEN 32

/* Fill hex_r with a new random 128-bit id (getrandom()).  Returns 0, or -1
   with errno set. */
int ids_generate(char hex_r[IDS_HEX_LEN + 1]);
/* A time-ordered id (mail oids): 8 hex digits of the seconds and 5 of the
   microseconds (< 1000000) of the wall clock when it is made, then 19
   random: the byte order of a folder's mail keys is then the order their
   oids were made in (on the clock of the machine that made them), and a
   listing can skip the mails older than a time (ids_time_prefix()).  76
   random bits keep ids unique across machines and threads. */
#define IDS_TIME_HEX_LEN 13
int ids_generate_timed(char hex_r[IDS_HEX_LEN + 1]);
/* The clock of time-ordered ids, in microseconds since the epoch: the
   wall clock, but never behind a value it gave or was raised to (one per
   process, shared by its threads): an id made after a call to it sorts
   after that call's time even if the wall clock stepped back, or lags
   the clock of a machine whose bundle raised it (ids_clock_raise()). */
uint64_t ids_clock_us(void);
void ids_clock_raise(uint64_t us);
/* (secs, usecs) <-> microseconds */
uint64_t ids_us(uint32_t secs, uint32_t usecs);
/* The first IDS_TIME_HEX_LEN digits of the ids made at (secs, usecs):
   every id made at or after that time sorts at or after it.  usecs must be
   < 1000000. */
void ids_time_prefix(uint32_t secs, uint32_t usecs,
		     char hex_r[IDS_TIME_HEX_LEN + 1]);

/* The time (microseconds, as ids_us()) a time-ordered id hex was made
   at, into *us_r.  Returns false if hex does not start with one. */
bool ids_timed_us(const char *hex, uint64_t *us_r);

/* True if s is exactly 32 lowercase hex digits. */
bool ids_is_hex_id(const char *s);

/* The user's partition: the first 5 hex digits of SHA-256(user), split 2/3
   (h1 = digits 0-1, h2 = digits 2-4), e.g. "b5" and "899". */
void ids_user_hash(const char *user, char h1_r[3], char h2_r[4]);

#endif
