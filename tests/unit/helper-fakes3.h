/* helper-fakes3.h: start and stop the fake S3 endpoint
 * (tests/fixtures/misbehaving-http.py) for unit tests of the s3 backend. */
#ifndef OBOXFS_HELPER_FAKES3_H
#define OBOXFS_HELPER_FAKES3_H

#include <sys/types.h>

/* Start the server on a free 127.0.0.1 port with the extra arguments
   (NULL-terminated, may be NULL); it dies with the test process.  Fails the
   test if it does not come up.  Returns its pid; *port_r = its port. */
pid_t fakes3_start(const char *const *extra_args, int *port_r);
/* Kill and reap the server started by fakes3_start(); *pid = -1. */
void fakes3_stop(pid_t *pid);

#endif
