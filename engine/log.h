/* log.h: the engine's log sink.  The engine logs through obox_log(); the
 * program using it (the FUSE daemon, a tool, a test) chooses where the
 * lines go with obox_log_set_sink() (default: stderr, "oboxfs: "
 * prefixed).  Levels are syslog's. */
#ifndef OBOXFS_LOG_H
#define OBOXFS_LOG_H

#include <stdarg.h>

enum obox_log_level {
	OBOX_LOG_ERR = 3,
	OBOX_LOG_WARNING = 4,
	OBOX_LOG_INFO = 6,
	OBOX_LOG_DEBUG = 7,
};

/* Where the lines go: fmt is a printf format (a line ends in '\n'). */
typedef void obox_log_sink(enum obox_log_level level, const char *fmt,
			   va_list args);

/* NULL: back to the default (stderr).  Set it before any thread logs. */
void obox_log_set_sink(obox_log_sink *sink);

void obox_log(enum obox_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
