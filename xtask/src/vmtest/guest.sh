#!/bin/busybox sh
# netlab's kernel scenarios: the init (pid 1) of the VMs `cargo xtask vmtest` boots.
#
# Prints `VMTEST <scenario> PASS|FAIL|SKIP <detail>` for each scenario on the console (and,
# after a failure, `vmtest: [scenario] ...` lines with what went wrong), then `VMTEST-END`,
# and powers off. Every packet stays between the namespaces and the bridge made here.
# Kernel command line: `vmtest.only=a,b` runs only those scenarios.

/bin/busybox mkdir -p /proc /sys /dev /run /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s 2>/dev/null
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
# This busybox's shell runs its own applets before anything on PATH: iproute2's ip and tc
# are called by path (other programs, and `ip netns exec`, find busybox's ping on PATH).
ip() { /usr/sbin/ip "$@"; }
tc() { /usr/sbin/tc "$@"; }

mount -t proc proc /proc
read -r UPTIME _ </proc/uptime
echo "VMTEST-BOOT $UPTIME"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
# Kernel messages go to the console log, not between the result lines.
dmesg -n 1
hostname vmtest
ip link set lo up

KVER=$(uname -r)
MODDIR=/lib/modules/$KVER
ONLY=$(sed -n 's/.*vmtest\.only=\([^ ]*\).*/\1/p' /proc/cmdline | tr ',' ' ')
[ -n "$ONLY" ] || ONLY="load count kinds drop btf daemon cleanup"

say() { echo "vmtest: $*"; }

# kernel_at_least MAJOR MINOR
kernel_at_least() {
    maj=${KVER%%.*}
    rest=${KVER#*.}
    min=${rest%%[!0-9]*}
    [ "$maj" -gt "$1" ] || { [ "$maj" -eq "$1" ] && [ "$min" -ge "$2" ]; }
}
if kernel_at_least 6 6; then EXPECT_MODE=tcx; else EXPECT_MODE=netlink; fi
if kernel_at_least 5 17; then HAS_REASON=1; else HAS_REASON=0; fi
say "kernel $KVER, $(nproc) CPUs, expecting attach mode $EXPECT_MODE, drop reasons: $HAS_REASON"

# What the scenarios need loaded; netfilter asks modprobe for the rest on demand.
for m in veth bridge sch_ingress cls_bpf nf_tables nft_compat nft_counter x_tables; do
    if grep -q "/$m\.ko" "$MODDIR/modules.builtin" 2>/dev/null; then continue; fi
    grep -q "/$m\.ko:" "$MODDIR/modules.dep" 2>/dev/null || continue
    modprobe "$m" 2>/tmp/modprobe.err || say "modprobe $m failed: $(cat /tmp/modprobe.err)"
done
[ -e /sys/kernel/btf/vmlinux ] || say "no /sys/kernel/btf/vmlinux on this kernel"

now() { read -r t _ </proc/uptime; echo "$t"; }

# --- helpers used inside scenarios (each scenario runs in a subshell with $W its directory)

pass() { echo PASS >"$W/status"; echo "$*" >"$W/detail"; exit 0; }
fail() { echo FAIL >"$W/status"; echo "$*" >"$W/detail"; exit 1; }
skip() { echo SKIP >"$W/status"; echo "$*" >"$W/detail"; exit 0; }

# The last line of a netlab stderr file that says what went wrong (error, else warn).
last_error() {
    l=$(grep -E 'netlab: error|error:' "$1" 2>/dev/null | tail -n 1)
    [ -n "$l" ] || l=$(grep 'netlab: warn' "$1" 2>/dev/null | tail -n 1)
    [ -n "$l" ] || l=$(tail -n 1 "$1" 2>/dev/null)
    echo "$l"
}

# Two namespaces, each with an eth0 whose host side (v1, v2) is a port of br0; br0 has
# 10.99.0.254 and the namespaces .1 and .2 (IPv6 fd99::1 and ::2).
net_up() {
    ip netns add ns1 && ip netns add ns2 || return 1
    ip link add br0 type bridge || return 1
    ip link set br0 up
    ip addr add 10.99.0.254/24 dev br0
    for i in 1 2; do
        ip link add "v$i" type veth peer name eth0 netns "ns$i" || return 1
        ip link set "v$i" master br0
        ip link set "v$i" up
        ip -n "ns$i" link set lo up
        ip -n "ns$i" addr add "10.99.0.$i/24" dev eth0
        ip -n "ns$i" addr add "fd99::$i/64" dev eth0 nodad
        ip -n "ns$i" link set eth0 up
    done
}

net_down() {
    ip netns del ns1 2>/dev/null
    ip netns del ns2 2>/dev/null
    ip netns del ns3 2>/dev/null
    ip link del v1 2>/dev/null
    ip link del v2 2>/dev/null
    ip link del v3 2>/dev/null
    ip link del br0 2>/dev/null
    iptables -F INPUT 2>/dev/null
}

# alive PID: the process runs (an exited child stays a zombie until waited for).
alive() {
    kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# wait_for PATTERN FILE SECS [PID]: until PATTERN is in FILE; fails on timeout or if PID ended.
wait_for() {
    n=0
    while ! grep -q "$1" "$2" 2>/dev/null; do
        if [ -n "$4" ] && ! alive "$4"; then return 1; fi
        n=$((n + 1))
        [ "$n" -gt $(($3 * 5)) ] && return 1
        sleep 0.2
    done
}

# start_watch NAME ARGS...: `netlab watch ARGS` in the background, output in $W/NAME.out and
# .err; returns once it says it is watching (fails if it exits or takes over 120 s).
start_watch() {
    name=$1
    shift
    netlab watch "$@" >"$W/$name.out" 2>"$W/$name.err" &
    echo $! >"$W/$name.pid"
    wait_for "watching" "$W/$name.err" 120 "$(cat "$W/$name.pid")"
}

# end_process PID SIGNAL RCFILE: sends SIGNAL, waits up to 60 s (then SIGKILL), writes the
# exit code (137 after SIGKILL) to RCFILE.
end_process() {
    kill "-$2" "$1" 2>/dev/null
    n=0
    while alive "$1" && [ "$n" -lt 300 ]; do
        n=$((n + 1))
        sleep 0.2
    done
    if [ "$n" -ge 300 ]; then
        say "pid $1 ignored SIG$2 for 60 s: killed"
        kill -KILL "$1" 2>/dev/null
    fi
    wait "$1"
    echo $? >"$3"
}

# stop_watch NAME: SIGINT, then its exit code in $W/NAME.rc and its summary in $W/NAME.sum.
stop_watch() {
    end_process "$(cat "$W/$1.pid")" INT "$W/$1.rc"
    grep '"counters"' "$W/$1.out" | tail -n 1 >"$W/$1.sum"
}

# counter FILE IFACE DIRECTION KIND: packets in a summary or /v1/counters answer (0 if none).
counter() {
    grep -o '{[^{}]*}' "$1" 2>/dev/null | grep "\"iface\":\"$2\"" |
        grep "\"direction\":\"$3\"" | grep "\"kind\":\"$4\"" |
        sed -n 's/.*"packets":\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

# ping_stats FILE: "transmitted received" from ping's summary line.
ping_stats() {
    sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) \(packets \)\{0,1\}received.*/\1 \2/p' "$1"
}

# ping_from NS DEST COUNT FILE [ping options]: a bounded ping from NS; stats via ping_stats.
ping_from() {
    ns=$1 dest=$2 count=$3 out=$4
    shift 4
    ip netns exec "$ns" ping "$@" -c "$count" -i 0.3 -W 2 -w 20 "$dest" >"$out" 2>&1
}

# expect NAME GOT WANT: records a mismatch in $W/bad.
expect() {
    [ "$2" = "$3" ] || echo "$1=$2 (want $3)" >>"$W/bad"
}

mismatches() { tr '\n' ' ' <"$W/bad" 2>/dev/null; }

netlab_progs() {
    bpftool prog show 2>/dev/null | sed -n 's/.* name \(netlab_[a-z_]*\) .*/\1/p' | sort | tr '\n' ' '
}

# --- the scenarios

# The tc programs and the drop program pass the verifier and attach; which mode auto picks.
sc_load() {
    net_up || fail "cannot make the namespaces and bridge"
    start_watch w --iface v1 --duration 60 || fail "netlab watch did not start: $(last_error "$W/w.err")"
    progs=$(netlab_progs)
    drop_type=$(bpftool prog show 2>/dev/null | sed -n 's/^[0-9]*: \([a-z_]*\) *name netlab_kfree.*/\1/p' | head -n 1)
    stop_watch w
    mode=$(sed -n 's/.*watching [0-9]* interfaces\{0,1\} (\([a-z-]*\)).*/\1/p' "$W/w.err" | head -n 1)
    warn=$(grep 'netlab: warn' "$W/w.err" | head -n 1)
    # bpftool shows the drop program's full name where the kernel keeps BTF for it.
    for p in netlab_ingress netlab_egress netlab_kfree_sk; do
        case " $progs" in *" $p"*) ;; *) echo "$p not loaded" >>"$W/bad" ;; esac
    done
    expect mode "$mode" "$EXPECT_MODE"
    expect exit "$(cat "$W/w.rc")" 0
    # Where kfree_skb gives reasons, the BTF-typed tracepoint, bpftool's "tracing" (the raw
    # and the classic ones are the fallbacks for a program the verifier refused: slower on
    # every drop, and silent otherwise).
    if [ "$HAS_REASON" = 1 ]; then
        expect drop_program "$drop_type" tracing
    else
        expect drop_program "$drop_type" tracepoint
    fi
    if [ -s "$W/bad" ]; then
        # What the drop program needs from this kernel, for whoever reads the failure.
        f=/sys/kernel/tracing/events/skb/kfree_skb/format
        say "[load] skb:kfree_skb fields: $(sed -n 's/.*field:[^;]*[ *]\([a-z_]*\);.*/\1/p' "$f" | tr '\n' ' ')"
        say "[load] BTF has enum skb_drop_reason: $(bpftool btf dump file /sys/kernel/btf/vmlinux 2>/dev/null | grep -c "ENUM 'skb_drop_reason'")"
        fail "$(mismatches); programs: $progs; ${warn:-no warning}"
    fi
    pass "mode $mode; drop program on $drop_type; programs: $progs"
}

# Exact counts: every echo request and reply on both directions of both host-side veths.
sc_count() {
    net_up || fail "cannot make the namespaces and bridge"
    start_watch w --json --no-drops --iface v1 --iface v2 --duration 120 ||
        fail "netlab watch did not start: $(last_error "$W/w.err")"
    ping_from ns1 10.99.0.2 5 "$W/p1" &
    a=$!
    ping_from ns2 10.99.0.1 5 "$W/p2" &
    b=$!
    wait $a
    wait $b
    stop_watch w
    set -- $(ping_stats "$W/p1")
    tx1=${1:-?} rx1=${2:-?}
    set -- $(ping_stats "$W/p2")
    tx2=${1:-?} rx2=${2:-?}
    [ -s "$W/w.sum" ] || fail "no summary line (exit $(cat "$W/w.rc")): $(last_error "$W/w.err")"
    [ "$rx1" != "?" ] && [ "$rx1" -gt 0 ] && [ "$rx2" -gt 0 ] ||
        fail "the namespaces cannot ping each other (ns1→ns2 $tx1/$rx1, ns2→ns1 $tx2/$rx2)"
    s=$W/w.sum
    # v1 is ns1's side: ingress is what ns1 sends, egress what it receives.
    expect v1.in.request "$(counter "$s" v1 ingress icmp-echo-request)" "$tx1"
    expect v2.out.request "$(counter "$s" v2 egress icmp-echo-request)" "$tx1"
    expect v2.in.reply "$(counter "$s" v2 ingress icmp-echo-reply)" "$rx1"
    expect v1.out.reply "$(counter "$s" v1 egress icmp-echo-reply)" "$rx1"
    expect v2.in.request "$(counter "$s" v2 ingress icmp-echo-request)" "$tx2"
    expect v1.out.request "$(counter "$s" v1 egress icmp-echo-request)" "$tx2"
    expect v1.in.reply "$(counter "$s" v1 ingress icmp-echo-reply)" "$rx2"
    expect v2.out.reply "$(counter "$s" v2 egress icmp-echo-reply)" "$rx2"
    [ -s "$W/bad" ] && fail "$(mismatches)"
    pass "8 counters exact: ns1→ns2 $tx1 sent/$rx1 answered, ns2→ns1 $tx2/$rx2"
}

# ARP, ICMPv6 echo and neighbour discovery are recognised (counters and events).
sc_kinds() {
    net_up || fail "cannot make the namespaces and bridge"
    start_watch w --json --no-drops --iface v1 --iface v2 --duration 120 ||
        fail "netlab watch did not start: $(last_error "$W/w.err")"
    ping_from ns1 10.99.0.2 2 "$W/p4"
    ping_from ns1 fd99::2 3 "$W/p6" -6
    stop_watch w
    set -- $(ping_stats "$W/p6")
    tx6=${1:-?} rx6=${2:-?}
    [ -s "$W/w.sum" ] || fail "no summary line (exit $(cat "$W/w.rc")): $(last_error "$W/w.err")"
    [ "$rx6" != "?" ] && [ "$rx6" -gt 0 ] || fail "ping -6 ns1→ns2 got no answer ($tx6/$rx6)"
    s=$W/w.sum
    for k in arp-request:ingress arp-reply:egress ndp-neighbor-solicit:ingress ndp-neighbor-advert:egress; do
        kind=${k%:*} dir=${k#*:}
        n=$(counter "$s" v1 "$dir" "$kind")
        [ "$n" -gt 0 ] || echo "v1.$dir.$kind=0" >>"$W/bad"
        grep -v '"counters"' "$W/w.out" | grep -q "\"kind\":\"$kind\"" ||
            echo "no $kind event" >>"$W/bad"
    done
    expect v1.in.icmp6-echo-request "$(counter "$s" v1 ingress icmp6-echo-request)" "$tx6"
    expect v1.out.icmp6-echo-reply "$(counter "$s" v1 egress icmp6-echo-reply)" "$rx6"
    expect v2.out.icmp6-echo-request "$(counter "$s" v2 egress icmp6-echo-request)" "$tx6"
    [ -s "$W/bad" ] && fail "$(mismatches)"
    pass "arp request/reply, ndp solicit/advert, icmp6 echo $tx6/$rx6 exact"
}

# One capture shared by `drop` and `btf`, with netlab watching br0, v1 and v2 (drops on):
# ns1 pings br0's 10.99.0.254, which an INPUT rule of the root namespace drops; and the root
# namespace pings ns1 from br0's second address .253, answered (busybox ping has a raw
# socket: kernels free the reply's other copy, which is no drop). Kept in /tmp/dropcap.
drop_capture() {
    D=/tmp/dropcap
    [ -e "$D/done" ] && return 0
    mkdir -p "$D"
    (
        W=$D
        net_up || { echo "cannot make the namespaces and bridge" >"$D/setup"; exit 1; }
        cat /sys/class/net/br0/ifindex >"$D/br0.ifindex"
        ip addr add 10.99.0.253/24 dev br0
        iptables -I INPUT -i br0 -d 10.99.0.254 -p icmp -j DROP 2>"$D/iptables.err" ||
            { echo "iptables: $(cat "$D/iptables.err")" >"$D/setup"; exit 1; }
        if start_watch w --json --iface br0 --iface v1 --iface v2 --duration 120; then
            ping_from ns1 10.99.0.254 3 "$D/p"
            ping -c 3 -i 0.3 -W 2 -w 20 -I 10.99.0.253 10.99.0.1 >"$D/proot" 2>&1
            sleep 2 # netfilter drops wait for the next rule-counter snapshot
            stop_watch w
        else
            echo "netlab watch did not start: $(last_error "$D/w.err")" >"$D/setup"
        fi
        iptables -D INPUT -i br0 -d 10.99.0.254 -p icmp -j DROP
        net_down
    ) >"$D/log" 2>&1
    touch "$D/done"
}

# Drops are reported, with NETFILTER_DROP by name on kernels whose tracepoint has a reason;
# below 5.17: reported as drops without a reason, saying why, never with a wrong one.
sc_drop() {
    drop_capture
    D=/tmp/dropcap
    [ -s "$D/setup" ] && fail "$(cat "$D/setup")"
    cp "$D/w.err" "$W/watch.err"
    set -- $(ping_stats "$D/p")
    tx=${1:-?} rx=${2:-?}
    grep '"kind":"drop"' "$D/w.out" >"$W/drops"
    grep '"packet":"icmp-echo-request"' "$W/drops" >"$W/req"
    n=$(grep -c . "$W/drops")
    nreq=$(grep -c . "$W/req")
    reasons=$(sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' "$W/drops" | sort | uniq -c | awk '{ printf "%s%s×%s", s, $2, $1; s = " " }')
    rule=$(sed -n 's/.*"rule":"\([^"]*\)".*/\1/p' "$W/req" | head -n 1)
    # The other drops seen meanwhile: packet, reason and where.
    others=$(grep -v '"packet":"icmp-echo-request"' "$W/drops" |
        sed -n 's/.*"packet":"\([^"]*\)".*"iface":{\([^}]*\)}.*"reason":"\([^"]*\)".*"location":"\([^"]*\)".*/\1 \3 at \4 on {\2}/p' |
        sort | uniq -c | awk '{ $1 = $1 "×"; printf "%s%s", s, $0; s = "; " }')
    warn=$(grep 'netlab: warn' "$D/w.err" | head -n 1)
    [ "$rx" = 0 ] || echo "ping got $rx answers through the DROP rule" >>"$W/bad"
    expect echo-request-drops "$nreq" "$tx"
    set -- $(ping_stats "$D/proot")
    [ "${2:-0}" -gt 0 ] || echo "the root namespace's ping of ns1 got no answer" >>"$W/bad"
    expect answered-echo-replies-reported-as-drops "$(grep -c '"packet":"icmp-echo-reply"' "$W/drops")" 0
    if [ "$HAS_REASON" = 1 ]; then
        other=$(grep -v '"reason":"NETFILTER_DROP"' "$W/req" | grep -c .)
        expect non-NETFILTER_DROP "$other" 0
        [ -s "$W/bad" ] && fail "$(mismatches); $n drop events (${reasons:-none}); ${warn:-no warning}"
        pass "$nreq/$tx echo requests dropped, reasons: $reasons; rule: ${rule:-none attributed}; other drops: ${others:-none}"
    fi
    # No reason on this kernel: no reason name may be given, and netlab must say why.
    named=$(grep '"reason":"[A-Z]' "$W/drops" | grep -c .)
    expect drops-with-a-reason-name "$named" 0
    grep -qi 'reason' "$D/w.err" || echo "netlab does not say why drops have no reason" >>"$W/bad"
    # Freed where netlab knows netfilter frees a verdict's drop: the rule is still named.
    [ -n "$rule" ] || echo "no rule named for the drops in nf_hook_slow" >>"$W/bad"
    [ -s "$W/bad" ] && fail "$(mismatches); $n drop events (${reasons:-no reason names}); ${warn:-no warning}"
    pass "$nreq/$tx echo requests dropped without a reason (kernel < 5.17); rule: $rule; $(grep -i reason "$D/w.err" | head -n 1); other drops: ${others:-none}"
}

# The sk_buff/net_device/net offsets read from BTF: the drop events carry br0's ifindex,
# the host namespace, and the addresses of the dropped ping.
sc_btf() {
    drop_capture
    D=/tmp/dropcap
    [ -s "$D/setup" ] && fail "$(cat "$D/setup")"
    grep '"kind":"drop"' "$D/w.out" | grep '"packet":"icmp-echo-request"' >"$W/req"
    [ -s "$W/req" ] || fail "no echo-request drop events to check the offsets with; $(last_error "$D/w.err")"
    idx=$(cat "$D/br0.ifindex")
    n=$(grep -c . "$W/req")
    # The name is netlab's label, not read from the kernel: not part of the check.
    right=$(grep "\"ifindex\":$idx,\"netns\":\"host\"}" "$W/req" |
        grep '"ip":"10.99.0.1"' | grep -c '"ip":"10.99.0.254"')
    sample=$(head -n 1 "$W/req" | grep -o '"iface":{[^}]*}')
    len=$(head -n 1 "$W/req" | sed -n 's/.*"len":\([0-9]*\).*/\1/p')
    expect events-with-br0-ifindex-host-netns-and-addresses "$right" "$n"
    [ -s "$W/bad" ] && fail "$(mismatches); first: $sample"
    pass "$n drop events: br0 ifindex $idx, netns host, 10.99.0.1→10.99.0.254, len $len; $sample"
}

# start_daemon NAME: `netlab daemon` in the background; waits for its socket.
start_daemon() {
    netlab daemon --socket /run/nl.sock >"$W/$1.out" 2>"$W/$1.err" &
    echo $! >"$W/$1.pid"
    n=0
    until [ -S /run/nl.sock ] && timeout 30 netlab counters --json >"$W/$1.ready" 2>&1; do
        alive "$(cat "$W/$1.pid")" || { wait "$(cat "$W/$1.pid")"; return 1; }
        n=$((n + 1))
        [ "$n" -gt 600 ] && return 1
        sleep 0.2
    done
}

# stop_daemon NAME: SIGTERM and its exit code in $W/NAME.rc.
stop_daemon() {
    end_process "$(cat "$W/$1.pid")" TERM "$W/$1.rc"
}

# Counters survive a daemon restart: counted by the daemon, by the pinned links while it is
# down, and by the next daemon, which adopts them.
sc_daemon() {
    export NETLAB_SOCKET=/run/nl.sock
    net_up || fail "cannot make the namespaces and bridge"
    rm -f /run/nl.sock
    start_daemon d1 || fail "the daemon did not start: $(last_error "$W/d1.err")"
    total_tx=0 total_rx=0
    for phase in up down again; do
        case $phase in
        down)
            stop_daemon d1
            [ "$(cat "$W/d1.rc")" = 0 ] || echo "daemon exit $(cat "$W/d1.rc") on SIGTERM" >>"$W/bad"
            ;;
        again)
            start_daemon d2 || fail "the daemon did not start again: $(last_error "$W/d2.err")"
            ;;
        esac
        ping_from ns1 10.99.0.2 3 "$W/p.$phase"
        set -- $(ping_stats "$W/p.$phase")
        total_tx=$((total_tx + ${1:-0})) total_rx=$((total_rx + ${2:-0}))
        sleep 0.5
        timeout 60 netlab counters --json >"$W/c.$phase" 2>"$W/c.$phase.err" ||
            echo "netlab counters ($phase): $(last_error "$W/c.$phase.err")" >>"$W/bad"
        expect "$phase:v1.in.request" "$(counter "$W/c.$phase" v1 ingress icmp-echo-request)" "$total_tx"
        expect "$phase:v1.out.reply" "$(counter "$W/c.$phase" v1 egress icmp-echo-reply)" "$total_rx"
    done
    stop_daemon d2
    # Not this scenario's check (see cleanup): leave nothing pinned for the next ones.
    timeout 60 netlab daemon --cleanup >"$W/cleanup.out" 2>&1 || say "[daemon] --cleanup: $(cat "$W/cleanup.out")"
    [ "$total_rx" -gt 0 ] || echo "no ping answered" >>"$W/bad"
    [ -s "$W/bad" ] && fail "$(mismatches)"
    pass "counters add up over a restart: $total_tx requests, $total_rx replies on v1"
}

# A port that joins br0 while the daemon is stopped (SIGSTOP: it reads no netlink message,
# attaches nothing) is counted from its first packet: the kernel covers it as it joins. Each
# way in turn (NETLAB_COVER_VIA): fentry on netdev_master_upper_dev_link, a kprobe there,
# the tracepoints per packet.
sc_newport() {
    export NETLAB_SOCKET=/run/nl.sock
    net_up || fail "cannot make the namespaces and bridge"
    done_ways=
    for via in fentry kprobe packet; do
        rm -f /run/nl.sock
        RUST_LOG=debug NETLAB_COVER_VIA=$via start_daemon "d$via" ||
            fail "the daemon did not start: $(last_error "$W/d$via.err")"
        pid=$(cat "$W/d$via.pid")
        kill -STOP "$pid"
        ip netns add ns3 &&
            ip link add v3 type veth peer name eth0 netns ns3 &&
            ip link set v3 master br0 &&
            ip link set v3 up &&
            ip -n ns3 link set lo up &&
            ip -n ns3 addr add 10.99.0.3/24 dev eth0 &&
            ip -n ns3 link set eth0 up || { kill -CONT "$pid"; fail "cannot make ns3 and v3"; }
        ping_from ns3 10.99.0.1 2 "$W/p$via"
        kill -CONT "$pid"
        set -- $(ping_stats "$W/p$via")
        tx=${1:-?} rx=${2:-?}
        [ "$rx" != "?" ] && [ "$rx" -gt 0 ] || fail "ns3 cannot ping ns1 ($tx sent, $rx answered)"
        # Counters show once the daemon attached to v3.
        c=$W/c$via
        n=0
        until timeout 60 netlab counters --json >"$c" 2>"$c.err" &&
            [ "$(counter "$c" v3 ingress icmp-echo-request)" -gt 0 ] || [ "$n" -ge 50 ]; do
            n=$((n + 1))
            sleep 0.2
        done
        how=$(sed -n 's/.*new bridge ports are covered as they join (\([a-z ]*\).*/\1/p' "$W/d$via.err" | head -n 1)
        # Which cover programs ran: BTF-typed, or raw and why (the verifier's last words).
        typed=typed
        if ! grep -q 'the cover programs are BTF-typed' "$W/d$via.err"; then
            why=$(grep -B8 'by helper calls' "$W/d$via.err" | grep -v '^netlab: \|^$\|^verification time\|^stack depth\|^processed' |
                tail -n 1 | cut -c1-160)
            typed="raw: ${why:-no reason logged}"
        fi
        stop_daemon "d$via"
        timeout 60 netlab daemon --cleanup >/dev/null 2>&1
        ip netns del ns3
        ip link del v3 2>/dev/null
        expect "$via:v3.in.request" "$(counter "$c" v3 ingress icmp-echo-request)" "$tx"
        expect "$via:v3.out.reply" "$(counter "$c" v3 egress icmp-echo-reply)" "$rx"
        arp=$(counter "$c" v3 ingress arp-request)
        [ "$arp" -ge 1 ] || echo "$via:v3.in.arp-request=$arp (ns3 asked first)" >>"$W/bad"
        want=$via
        [ "$via" = packet ] && want="per packet"
        expect "$via:way" "$how" "$want"
        if [ -s "$W/bad" ]; then
            grep -B12 'processed [0-9]* insns' "$W/d$via.err" | cut -c1-300 | while IFS= read -r l; do say "[newport] $l"; done
            grep -i 'refused\|new bridge ports\|counted from when' "$W/d$via.err" | tail -n 4 | while IFS= read -r l; do say "[newport] $l"; done
            fail "$(mismatches)"
        fi
        done_ways="$done_ways $via ($typed): $tx requests, $rx replies, $arp ARP;"
    done
    pass "counted while the daemon was stopped, each way:$done_ways"
}

# leftovers: what of netlab's is still in the kernel (pins, programs, clsact qdiscs).
leftovers() {
    pins=$(find /sys/fs/bpf -mindepth 1 ! -type d 2>/dev/null | tr '\n' ' ')
    progs=$(netlab_progs)
    qdiscs=$(tc qdisc show 2>/dev/null | grep clsact | sed 's/ *$//' | tr '\n' ';')
    out=
    [ -n "$pins" ] && out="pins: $pins"
    [ -n "$progs" ] && out="$out programs: $progs"
    [ -n "$qdiscs" ] && out="$out qdiscs: $qdiscs"
    echo "$out"
}

# Nothing of netlab's stays behind: after `watch` ends, and after `daemon --cleanup`.
sc_cleanup() {
    export NETLAB_SOCKET=/run/nl.sock
    net_up || fail "cannot make the namespaces and bridge"
    before=$(leftovers)
    if [ -n "$before" ]; then
        # Left by an earlier scenario: removed first, so that what follows is this one's.
        say "[cleanup] left before this scenario: $before"
        timeout 60 netlab daemon --cleanup >/dev/null 2>&1
        sleep 1
        before=$(leftovers)
        [ -n "$before" ] && fail "netlab daemon --cleanup does not remove what was left before: $before"
    fi
    start_watch w --iface br0 --iface v1 --duration 60 ||
        fail "netlab watch did not start: $(last_error "$W/w.err")"
    stop_watch w
    sleep 1
    left=$(leftovers)
    [ -n "$left" ] && echo "after watch: $left" >>"$W/bad"
    rm -f /run/nl.sock
    if start_daemon d; then
        stop_daemon d
        daemon="daemon ran"
    else
        daemon="daemon did not start: $(last_error "$W/d.err")"
        echo "$daemon" >>"$W/bad"
    fi
    timeout 60 netlab daemon --cleanup >"$W/c.out" 2>"$W/c.err" ||
        echo "daemon --cleanup failed: $(last_error "$W/c.err")" >>"$W/bad"
    n=0
    while left=$(leftovers) && [ -n "$left" ] && [ "$n" -lt 10 ]; do
        sleep 0.5
        n=$((n + 1))
    done
    [ -n "$left" ] && echo "after daemon --cleanup: $left" >>"$W/bad"
    [ -s "$W/bad" ] && fail "$(mismatches)"
    pass "nothing left after watch, nor after daemon --cleanup ($daemon; $(head -n 1 "$W/c.err"))"
}

# --- run them

run_scenario() {
    name=$1
    case " $ONLY " in *" $name "*) ;; *) return ;; esac
    W=/tmp/sc-$name
    mkdir -p "$W"
    t0=$(now)
    ("sc_$name") >"$W/log" 2>&1 </dev/null
    t1=$(now)
    # Whatever the scenario left running or standing.
    for p in "$W"/*.pid; do
        [ -e "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null
    done
    net_down
    status=$(cat "$W/status" 2>/dev/null)
    detail=$(cat "$W/detail" 2>/dev/null)
    [ -n "$status" ] || { status=FAIL detail="the scenario ended without a result"; }
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    echo "VMTEST $name $status $detail ($secs s)"
    if [ "$status" = FAIL ]; then
        for f in "$W"/log "$W"/*.err /tmp/dropcap/w.err; do
            [ -s "$f" ] || continue
            case $f in /tmp/dropcap/*) case $name in drop | btf) ;; *) continue ;; esac ;; esac
            say "[$name] --- tail of ${f#/tmp/} ---"
            tail -n 15 "$f" | sed 's/^vmtest: //' | while IFS= read -r l; do say "[$name] $l"; done
        done
    fi
}

for s in load count kinds drop btf daemon newport cleanup; do
    run_scenario "$s"
done
say "modules loaded: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
dmesg | tail -n 40 | sed 's/^/dmesg: /'
echo "VMTEST-END"
sync
poweroff -f
sleep 5
reboot -f
