/* Default build-time configuration, used by Makefile.bpf for the prebuilt
 * objects that the tests load. The agent renders its own tendril_config.h
 * (datapath/compiler.cc) from the configured features (only macros the BPF
 * code reads; a unit test checks both ways) and puts it first on the
 * include path. */
#ifndef TENDRIL_CONFIG_H_
#define TENDRIL_CONFIG_H_

#define TENDRIL_ENABLE_IPV4 1
#define TENDRIL_ENABLE_IPV6 1
#define TENDRIL_ENABLE_PREFILTER 1
#define TENDRIL_ENABLE_NODEPORT 1
#define TENDRIL_ENABLE_MASQUERADE 1

#endif
