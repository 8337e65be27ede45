/*
 * Test-only shim for running the cross-built agent under qemu-user (tests/tests/packaging.rs).
 *
 * Debian's qemu-user (7.2 in bookworm; 10.0 in trixie too) does not translate the
 * TCGETS2/TCSETS2 ioctls that serial2 uses to configure a serial port: under emulation
 * every open fails with ENOSYS, although a real Pi's kernel has them. Preloaded into the
 * emulated agent (qemu's -E LD_PRELOAD=...), this turns them into TCGETS/TCSETS, which
 * qemu translates: the struct termios the kernel reads and writes is the first part of
 * struct termios2. Only the custom-speed fields are lost, which a pty ignores.
 */
#define _GNU_SOURCE
#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <dlfcn.h>
#include <stdarg.h>

int ioctl(int fd, unsigned long request, ...)
{
	static int (*real)(int, unsigned long, ...);
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	switch (request) {
	case TCGETS2: {
		struct termios2 *t = arg;
		int r = real(fd, TCGETS, arg);
		if (r == 0)
			t->c_ispeed = t->c_ospeed = 9600;
		return r;
	}
	case TCSETS2:
		return real(fd, TCSETS, arg);
	case TCSETSW2:
		return real(fd, TCSETSW, arg);
	case TCSETSF2:
		return real(fd, TCSETSF, arg);
	default:
		return real(fd, request, arg);
	}
}
