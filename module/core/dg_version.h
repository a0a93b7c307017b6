/*
 * datagate core: the release version, the one place it is written.
 *
 * "datagate --version", the status endpoint (JSON "datagate_version",
 * Prometheus datagate_build_info) and `make version` all read it.  A
 * release changes this line and nothing else.
 */

#ifndef DG_VERSION_H
#define DG_VERSION_H

#define DG_VERSION              "0.1.0"

#endif /* DG_VERSION_H */
