#include "textflag.h"

// rawHandler is the sa_handler of the signals the Go runtime keeps from
// os/signal (see rawsig.go). The kernel calls it with the C convention:
// DI = signal number, SI = *siginfo, DX = *ucontext, on the thread's
// alternate signal stack (SA_ONSTACK; the Go runtime gives every thread
// one). It touches no Go state and no stack: the kernel restores every
// register at rt_sigreturn, so nothing needs saving.
//
// Three kinds of signal belong to the runtime and go on to its handler,
// untouched, by a tail jump with the registers and the stack as the
// kernel set them: a URG it sent one of its own threads to preempt a
// goroutine (tgkill: si_code SI_TKILL, si_pid steward's), a PROF from its
// profiling timers (si_code SI_TIMER or SI_KERNEL), and a real fault, ILL,
// TRAP, BUS, FPE, SEGV, STKFLT or SYS raised by the kernel (si_code above
// zero; a process's kill, sigqueue or tgkill is zero or below), which the
// runtime turns into a panic or a crash with its stack dump. Every other
// signal has the first 24 bytes of its siginfo (signo, errno, code, pid,
// uid) written to a non-blocking pipe, which a goroutine reads.
TEXT ·rawHandler(SB),NOSPLIT|NOFRAME,$0-0
	CMPL	DI, $23 // SIGURG
	JEQ	urg
	CMPL	DI, $27 // SIGPROF
	JEQ	prof
	CMPL	DI, $13 // SIGPIPE
	JEQ	record
	CMPL	DI, $32
	JGE	record
	CMPL	8(SI), $0 // a fault signal: si_code > 0 is the kernel's
	JGT	runtime
	JMP	record
urg:
	CMPL	8(SI), $-6 // si_code == SI_TKILL
	JNE	record
	MOVL	16(SI), AX // si_pid
	CMPL	AX, ·rawSelfPID(SB)
	JNE	record
	MOVQ	·runtimeHandler(SB), AX
	JMP	AX
prof:
	CMPL	8(SI), $-2 // si_code == SI_TIMER: timer_create
	JEQ	runtime
	CMPL	8(SI), $0x80 // si_code == SI_KERNEL: setitimer
	JNE	record
runtime:
	MOVQ	·runtimeHandler(SB), AX
	JMP	AX
record:
	MOVQ	·rawWriteFD(SB), DI
	MOVQ	$24, DX
	MOVQ	$1, AX // write(fd, siginfo, 24)
	SYSCALL
	RET

// rawRestorer returns from the handler (SA_RESTORER is mandatory on amd64).
TEXT ·rawRestorer(SB),NOSPLIT|NOFRAME,$0-0
	MOVQ	$15, AX // rt_sigreturn
	SYSCALL
	INT	$3

// The ABI0 addresses of the two, for rt_sigaction: a Go func value would
// point at an ABI wrapper that expects a goroutine.
DATA ·rawHandlerPC+0(SB)/8, $·rawHandler(SB)
GLOBL ·rawHandlerPC(SB), RODATA, $8
DATA ·rawRestorerPC+0(SB)/8, $·rawRestorer(SB)
GLOBL ·rawRestorerPC(SB), RODATA, $8
