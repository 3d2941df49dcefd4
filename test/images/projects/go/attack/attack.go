// Go's own way to call denied syscalls: syscall.RawSyscall. Each must fail with EPERM.
package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

func main() {
	src, _ := syscall.BytePtrFromString("none")
	dst, _ := syscall.BytePtrFromString("/tmp")
	fs, _ := syscall.BytePtrFromString("tmpfs")
	calls := []struct {
		name string
		nr   uintptr
		a    [3]uintptr
	}{
		{"unshare", syscall.SYS_UNSHARE, [3]uintptr{syscall.CLONE_NEWUSER}},
		{"mount", syscall.SYS_MOUNT, [3]uintptr{uintptr(unsafe.Pointer(src)), uintptr(unsafe.Pointer(dst)), uintptr(unsafe.Pointer(fs))}},
		{"setns", 308, [3]uintptr{0, 0}},
		{"keyctl", 250, [3]uintptr{0}},
		{"bpf", 321, [3]uintptr{0}},
	}
	for _, c := range calls {
		_, _, errno := syscall.RawSyscall(c.nr, c.a[0], c.a[1], c.a[2])
		fmt.Printf("go %s: %s\n", c.name, errnoName(errno))
	}
}

func errnoName(e syscall.Errno) string {
	switch e {
	case 0:
		return "ALLOWED"
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOSYS:
		return "ENOSYS"
	}
	return e.Error()
}
