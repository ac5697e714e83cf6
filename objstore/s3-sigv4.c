/* s3-sigv4.c: work in progress */
typedef int oboxfs_placeholder_s3_sigv4;
