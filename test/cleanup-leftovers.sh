#!/usr/bin/env bash
# Removes what kernel tests may leave behind if they crash: every resource a
# test makes is named with the "tndt" prefix. With --check, also fails if
# anything was left (the tests' own destructors should have removed it).
set -u
check=0
[ "${1:-}" = "--check" ] && check=1
left=""

for p in $(pgrep -f 'tendril-agent .*tndt' 2>/dev/null); do left+=" agent:$p"; kill -TERM "$p" 2>/dev/null; done
sleep 0.2
for p in $(pgrep -f 'tendril-agent .*tndt' 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
for p in $(pgrep -f 'socat .*tndt|TCP-LISTEN:.*tndt' 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done

for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^tndt'); do
  left+=" netns:$ns"
  # kill processes still inside, then delete
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  ip netns del "$ns" 2>/dev/null
done

for d in /sys/fs/bpf/tndt*; do
  [ -e "$d" ] || continue
  left+=" pin:$d"
  rm -rf "$d"
done

cg=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
if [ -n "$cg" ]; then
  for d in "$cg"/tndt*; do
    [ -d "$d" ] || continue
    left+=" cgroup:$d"
    if [ -f "$d/cgroup.procs" ]; then
      while read -r p; do echo "$p" > "$cg/cgroup.procs" 2>/dev/null; done < "$d/cgroup.procs"
    fi
    rmdir "$d" 2>/dev/null
  done
fi
# Temporary directories are "tndt<pid % 100000><6 random>": those of a
# process still running (a unit test beside this one) stay.
live=" $(for p in /proc/[0-9]*; do echo $((${p#/proc/} % 100000)); done | tr '\n' ' ') "
for d in /tmp/tndt*; do
  [ -e "$d" ] || continue
  n=${d#/tmp/tndt}
  pid=${n%??????}
  case "$live" in *" $pid "*) continue ;; esac
  rm -rf "$d" 2>/dev/null
done

if [ -n "$left" ]; then
  echo "cleaned up leftovers:$left"
  [ $check -eq 1 ] && exit 1
fi
exit 0
