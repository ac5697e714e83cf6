/* s3-xml.c: work in progress */
typedef int oboxfs_placeholder_s3_xml;
