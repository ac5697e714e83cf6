/* s3-credentials.c: work in progress */
typedef int oboxfs_placeholder_s3_credentials;
