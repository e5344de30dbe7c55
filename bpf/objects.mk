# The BPF objects and the flags every one is compiled with. The one list:
# Makefile.bpf includes it, CMake reads it (the build's outputs), and the
# agent's run-time compiler gets it through a generated header
# (tendril_build_config.h). Plain `NAME := words` lines only.
BPF_PROGS := bpf_xdp bpf_sock bpf_host bpf_lxc
BPF_TEST_PROGS := test_attach test_reject test_foreign test_tail_gap bench_pass
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
