"""Python's own way: ctypes' syscall(). Each denied call must fail with EPERM."""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
for name, nr, args in [("unshare", 272, (0x10000000,)), ("mount", 165, (b"none", b"/tmp", b"tmpfs", 0, None)), ("setns", 308, (0, 0)), ("keyctl", 250, (0,)), ("bpf", 321, (0, 0, 0))]:
    r = libc.syscall(nr, *args)
    e = ctypes.get_errno()
    print(f"python {name}: {'ALLOWED' if r >= 0 else errno.errorcode.get(e, e)}")
