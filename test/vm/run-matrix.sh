#!/usr/bin/env bash
# Kernel matrix: runs the same tests on this machine's kernel and on Debian
# 12's 6.1 cloud kernel booted under qemu (software emulation, -accel tcg),
# and prints a table kernel x suite, plus verifier instruction counts per
# program and kernel.
#
#   test/vm/run-matrix.sh            build (if needed), run both, print tables
#   KEEP_VM_DIR=1 ...                keep build/vm (initramfs, logs)
#
# The guest kernel comes from Debian's package (apt-get download, not
# committed); the initramfs is built here: busybox, the project's binaries,
# tests and BPF objects at their build paths, the shared libraries they need,
# the tools the tests call (ip, tc, ping, nc, socat, curl, nsenter), and the
# kernel modules 6.1 builds as modules (veth, bridge, sch_ingress, cls_bpf,
# cls_u32). No network access in the guest.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=$ROOT/build
VM=$BUILD/vm
mkdir -p "$VM"

. "$ROOT/test/vm/suites.sh"

if [ ! -x "$BUILD/test/integration_tests" ] || [ ! -x "$BUILD/test/bpf_verify_report" ]; then
  cmake -S . -B build >/dev/null && cmake --build build -j2 >/dev/null
fi

# ---- the guest kernel -------------------------------------------------------
kpkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
KPKG=$(kpkg)
if [ -z "$KPKG" ]; then apt-get update -qq >/dev/null 2>&1 || true; KPKG=$(kpkg); fi
[ -n "$KPKG" ] || { echo "matrix: cannot find Debian's cloud kernel package" >&2; exit 1; }
if [ ! -d "$VM/kernel/boot" ]; then
  (cd "$VM" && rm -f ./*.deb && apt-get download "$KPKG" >/dev/null 2>&1)
  rm -rf "$VM/kernel" && dpkg-deb -x "$VM"/"$KPKG"_*.deb "$VM/kernel"
fi
KVER=$(ls "$VM/kernel/lib/modules")
VMLINUZ=$(ls "$VM/kernel/boot"/vmlinuz-*)

# ---- the initramfs ----------------------------------------------------------
IR=$VM/initramfs
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,dev,proc,sys,tmp,run,etc,root,var/run} "$IR/lib/modules/$KVER"
cp /bin/busybox "$IR/bin/busybox"
for applet in $("$IR/bin/busybox" --list); do
  if [ ! -e "$IR/bin/$applet" ]; then ln -s busybox "$IR/bin/$applet"; fi
done
copy_with_libs() {  # copies each file to the same path inside, with its libraries
  for f in "$@"; do
    mkdir -p "$IR$(dirname "$f")"
    cp -L "$f" "$IR$f"
    for lib in $(ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'); do
      if [ ! -e "$IR$lib" ]; then
        mkdir -p "$IR$(dirname "$lib")"
        cp -L "$lib" "$IR$lib"
      fi
    done
  done
}
# Real tools the tests call; busybox's versions differ in flags and output.
copy_with_libs /usr/sbin/ip /usr/sbin/tc /usr/bin/ping /usr/bin/nc.openbsd /usr/bin/socat \
  /usr/bin/curl /usr/bin/nsenter /usr/sbin/ethtool /bin/bash /bin/dash
# /bin/sh is dash: busybox's sh would run its own applets (nc, ping) in place
# of the real tools.
ln -sf dash "$IR/bin/sh"
mkdir -p "$IR/usr/bin" && ln -sf /bin/busybox "$IR/usr/bin/env"  # for #!/usr/bin/env bash
ln -sf /usr/bin/nc.openbsd "$IR/usr/bin/nc"
for b in ip tc; do ln -sf /usr/sbin/$b "$IR/sbin/$b"; done
rm -f "$IR/bin/ip" "$IR/bin/tc" "$IR/bin/ping" "$IR/bin/nc" "$IR/bin/nsenter"
copy_with_libs "$BUILD/tendril-agent" "$BUILD/tendril" "$BUILD/test/unit_tests" "$BUILD/test/bpf_tests" \
  "$BUILD/test/integration_tests" "$BUILD/test/bpf_verify_report"
mkdir -p "$IR$BUILD/bpf" && cp "$BUILD"/bpf/*.o "$IR$BUILD/bpf/"
mkdir -p "$IR$ROOT/test/vm" "$IR$ROOT/vagrant" "$IR$ROOT/systemd"
cp "$ROOT/test/vm/suites.sh" "$IR$ROOT/test/vm/"
# The BPF sources (the unit tests read them: the config header against what they use).
mkdir -p "$IR$ROOT/bpf/lib" "$IR$ROOT/maps"
cp "$ROOT"/bpf/*.c "$IR$ROOT/bpf/" && cp "$ROOT"/bpf/lib/*.h "$IR$ROOT/bpf/lib/" && cp "$ROOT"/maps/tendril_maps*.h "$IR$ROOT/maps/"
cp "$ROOT/vagrant/provision.sh" "$ROOT/vagrant/check-nodeport.sh" "$IR$ROOT/vagrant/"
cp "$ROOT/systemd/tendril-agent.service" "$IR$ROOT/systemd/"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$IR/etc/passwd"
printf 'root:x:0:\n' > "$IR/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$IR/etc/hosts"
MODS="net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko drivers/net/veth.ko net/sched/sch_ingress.ko net/sched/cls_bpf.ko net/sched/cls_u32.ko"
for m in $MODS; do
  mkdir -p "$IR/lib/modules/$KVER/$(dirname "kernel/$m")"
  cp "$VM/kernel/lib/modules/$KVER/kernel/$m" "$IR/lib/modules/$KVER/kernel/$m"
done
cat > "$IR/init" <<INIT
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# /tmp stays the initramfs' own (writable) directory: the build tree may live
# under /tmp and must not be hidden by a mount.
mount -t tmpfs tmpfs /run
mkdir -p /sys/fs/cgroup /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
for m in $MODS; do insmod /lib/modules/$KVER/kernel/\$m || echo "TND-MODULE-FAILED \$m"; done
ip link set lo up
echo "TND-KERNEL \$(uname -r)"
# The frame fuzzer's breadth is the host's job (20,000 frames); here it
# checks the same invariants on this kernel with fewer. Software emulation
# runs the verifier many times slower than the host: the tests' waits for an
# agent to come up are three times as long (TENDRIL_TEST_TIME_SCALE).
export TENDRIL_TEST_PREBUILT_BPF=1 TENDRIL_EXPECT_TCX=0 TND_VERIFY_LOG_LINES=15 TENDRIL_FRAME_FUZZ_FRAMES=4000
export TENDRIL_TEST_TIME_SCALE=3
BUILD=$BUILD
. $ROOT/test/vm/suites.sh
run_suites guest /tmp
echo "TND-VERIFIER-BEGIN"; cat /tmp/verifier.txt; echo "TND-VERIFIER-END"
# The Vagrant provisioning script, as on a real node: this VM is the node
# (its root namespace and cgroup are the guest's, not this machine's); a
# namespace plays the peer node on the private network.
ip netns add peer
ip link add eth1 type veth peer name eth0 netns peer
ip addr add 192.168.56.11/24 dev eth1 && ip link set eth1 up
ip -n peer addr add 192.168.56.12/24 dev eth0 && ip -n peer link set eth0 up && ip -n peer link set lo up
printf '#!/bin/sh\nread -r r\nprintf "HTTP/1.0 200 OK\\r\\n\\r\\nnode 192.168.56.12\\n"\n' > /tmp/peer-http.sh
chmod +x /tmp/peer-http.sh
ip netns exec peer socat TCP-LISTEN:8080,fork,reuseaddr EXEC:/tmp/peer-http.sh &
$ROOT/vagrant/provision.sh --node-ip 192.168.56.11 --peer-ip 192.168.56.12 --device eth1 \
  --xdp-mode generic --prebuilt $BUILD --no-systemd
echo "TND-RESULT guest provision \$?"
# The node port from outside the node, as the Vagrant host checks it: from
# the peer namespace (the peer's own backend answers through SNAT, the node's
# host-network backend through DNAT).
ip netns exec peer $ROOT/vagrant/check-nodeport.sh 192.168.56.11 --backends 2
echo "TND-RESULT guest nodeport \$?"
echo "TND-DONE"
poweroff -f
INIT
chmod +x "$IR/init"
(cd "$IR" && find . | cpio -o -H newc 2>/dev/null) > "$VM/initramfs.cpio"

# ---- run: host, then guest --------------------------------------------------
HOST_KERNEL=$(uname -r)
HOST_TCX=0
[ "$(printf '%s\n6.6\n' "$(uname -r | cut -d- -f1)" | sort -V | head -1)" = "6.6" ] && HOST_TCX=1
echo "== host kernel $HOST_KERNEL"
mkdir -p "$VM/host"
# Under CTest (TENDRIL_MATRIX_IN_CTEST=1) the bpf and integration suites have
# just run on this kernel as CTest tests of their own; only unit and the
# verifier report run again here, for the table.
HOST_SUITES="unit bpf integration verifier"
[ "${TENDRIL_MATRIX_IN_CTEST:-0}" = 1 ] && HOST_SUITES="unit verifier"
(set +e; export TENDRIL_EXPECT_TCX=$HOST_TCX; run_suites host "$VM/host" $HOST_SUITES) > "$VM/host.log" 2>&1 || true
grep -E 'TND-RESULT|FAILED' "$VM/host.log" || true

echo "== guest kernel $KVER under qemu (tcg)"
start=$(date +%s)
timeout 1500 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 3072 -nographic -no-reboot \
  -kernel "$VMLINUZ" -initrd "$VM/initramfs.cpio" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3" > "$VM/guest.log" 2>&1 || true
echo "guest ran $(( $(date +%s) - start )) s"
grep -E 'TND-(RESULT|MODULE|KERNEL)|FAILED|PASSED' "$VM/guest.log" | tr -d '\r' || true
sed -n '/TND-VERIFIER-BEGIN/,/TND-VERIFIER-END/p' "$VM/guest.log" | tr -d '\r' | grep -v TND-VERIFIER > "$VM/guest-verifier.txt" || true

# ---- tables -----------------------------------------------------------------
result() {  # log label suite
  local rc
  rc=$(tr -d '\r' < "$1" | awk -v l="$2" -v s="$3" '$1=="TND-RESULT" && $2==l && $3==s {print $4}')
  if [ -z "$rc" ] && [ "$2" = host ] && [ "${TENDRIL_MATRIX_IN_CTEST:-0}" = 1 ]; then
    echo "in this CTest run"; return
  fi
  case "$rc" in 0) echo pass ;; "") echo "did not run" ;; *) echo "FAIL" ;; esac
}
echo
echo "Kernel matrix"
printf '| suite | host %s | guest %s |\n| --- | --- | --- |\n' "$HOST_KERNEL" "$KVER"
overall=0
for s in unit bpf integration verifier; do
  h=$(result "$VM/host.log" host $s); g=$(result "$VM/guest.log" guest $s)
  printf '| %s | %s | %s |\n' "$s" "$h" "$g"
  { [ "$h" = pass ] || [ "$h" = "in this CTest run" ]; } && [ "$g" = pass ] || overall=1
done
g=$(result "$VM/guest.log" guest provision)
printf '| vagrant/provision.sh | not run (it would configure this machine) | %s |\n' "$g"
[ "$g" = pass ] || overall=1
g=$(result "$VM/guest.log" guest nodeport)
printf '| vagrant/check-nodeport.sh (from the peer) | not run | %s |\n' "$g"
[ "$g" = pass ] || overall=1
echo
echo "Verified instructions per program"
printf '| object | program | host %s | guest %s |\n| --- | --- | --- | --- |\n' "$HOST_KERNEL" "$KVER"
join -j1 <(awk 'NR>1 {print $1"/"$2, ($3=="yes" ? $4 : "refused")}' "$VM/host/verifier.txt" | sort) \
         <(awk 'NR>1 {print $1"/"$2, ($3=="yes" ? $4 : "refused")}' "$VM/guest-verifier.txt" | sort) |
  awk '{split($1,a,"/"); printf "| %s | %s | %s | %s |\n", a[1], a[2], $2, $3}'
echo
if command -v vagrant >/dev/null 2>&1; then
  if (cd "$ROOT/vagrant" && vagrant validate --ignore-provider >/dev/null 2>&1); then
    echo "vagrant validate (--ignore-provider): Vagrantfile valid"
  else
    echo "vagrant validate: FAILED"; overall=1
  fi
else
  echo "vagrant validate: skipped (vagrant not installed; no VM provider works here anyway)"
fi
[ "${KEEP_VM_DIR:-0}" = 1 ] || rm -rf "$IR"
exit $overall
