# What any step's process may try to leave its container; every attempt must fail.
t() { local name=$1; shift; if out=$("$@" 2>&1); then echo "shell $name: ALLOWED $out"; else echo "shell $name: denied ($(echo "$out" | tail -n 1 | cut -c1-80))"; fi; }
t write-proc-self-exe sh -c 'echo x > /proc/self/exe'
t write-proc-sys sh -c 'echo x > /proc/sys/kernel/core_pattern'
t write-sys sh -c 'echo x > /sys/kernel/uevent_helper'
t mknod mknod /tmp/null c 1 3
t mount mount -t tmpfs none /mnt
t unshare-user unshare -U true
t unshare-mount unshare -m true
t setuid-helper sh -c 'cp /bin/true /tmp/t && chmod u+s /tmp/t && ls -l /tmp/t | grep -q rws && exit 1'
t chroot chroot / true
t see-host-pids sh -c 'test $(ls -d /proc/[0-9]* | wc -l) -gt 50'
