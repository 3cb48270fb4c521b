#include "textflag.h"

// rawHandler is the sa_handler of every signal steward catches (see
// rawsig.go). The kernel calls it with the C convention: DI = signal
// number, SI = *siginfo, DX = *ucontext, on the thread's alternate signal
// stack (SA_ONSTACK; the Go runtime gives every thread one). It touches no
// Go state but rawPending and no stack: the kernel restores every register
// at rt_sigreturn, so nothing needs saving.
//
// Three kinds of signal belong to the runtime and go on to its handler,
// untouched, by a tail jump with the registers and the stack as the
// kernel set them: a URG it sent one of its own threads to preempt a
// goroutine (tgkill: si_code SI_TKILL, si_pid steward's), a PROF from its
// profiling timers (si_code SI_TIMER or SI_KERNEL), and a real fault, ILL,
// TRAP, BUS, FPE, SEGV, STKFLT or SYS raised by the kernel (si_code above
// zero; a process's kill, sigqueue or tgkill is zero or below), which the
// runtime turns into a panic or a crash with its stack dump. A PIPE the
// kernel raised for steward's own write to a broken pipe (si_pid
// steward's) is dropped. Every other signal is marked in rawPending and
// one byte is written to a non-blocking pipe, which a goroutine reads;
// unless the handler runs in a child steward forked that has not exec'd
// yet (the handlers the runtime does not reset there, CONT, TSTP, TTIN,
// TTOU and 32): that signal was the child's.
TEXT ·rawHandler(SB),NOSPLIT|NOFRAME,$0-0
	CMPL	DI, $23 // SIGURG
	JEQ	urg
	CMPL	DI, $27 // SIGPROF
	JEQ	prof
	CMPL	DI, $13 // SIGPIPE
	JEQ	pipe
	CMPL	DI, $32
	JGE	record
	// ILL 4, TRAP 5, BUS 7, FPE 8, SEGV 11, STKFLT 16, SYS 31
	MOVL	$0x800109B0, AX
	BTL	DI, AX
	JCC	record
	CMPL	8(SI), $0 // a fault signal: si_code > 0 is the kernel's
	JGT	runtime
	JMP	record
urg:
	CMPL	8(SI), $-6 // si_code == SI_TKILL
	JNE	record
	MOVL	16(SI), AX // si_pid
	CMPL	AX, ·rawSelfPID(SB)
	JNE	record
	JMP	runtime
prof:
	CMPL	8(SI), $-2 // si_code == SI_TIMER: timer_create
	JEQ	runtime
	CMPL	8(SI), $0x80 // si_code == SI_KERNEL: setitimer
	JNE	record
runtime:
	MOVQ	·runtimeHandler(SB), AX
	JMP	AX
pipe:
	MOVL	16(SI), AX // si_pid
	CMPL	AX, ·rawSelfPID(SB)
	JEQ	done
record:
	MOVQ	$39, AX // getpid()
	SYSCALL
	CMPL	AX, ·rawSelfPID(SB)
	JNE	done
	LEAL	-1(DI), CX
	MOVQ	$1, AX
	SHLQ	CX, AX
	LOCK
	ORQ	AX, ·rawPending(SB)
	MOVQ	·rawWriteFD(SB), DI
	MOVQ	$1, DX
	MOVQ	$1, AX // write(fd, siginfo, 1): the byte is only a wake-up
	SYSCALL
done:
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
