package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/stewardhq/steward/checks"
)

// outputDrainWait bounds how long Exec reads output after the command has
// exited, in case a child it left behind holds the pipe open.
const outputDrainWait = time.Second

// Exec runs a one-off command (a probe or a check) through the reaper, in
// its own process group with stdout and stderr captured together. When ctx
// ends first, the whole group is killed. It implements checks.Executor.
func (s *Supervisor) Exec(ctx context.Context, cmd checks.CommandSpec) (checks.CommandResult, error) {
	if len(cmd.Argv) == 0 {
		return checks.CommandResult{}, errors.New("supervisor: exec: empty command")
	}
	env := cmd.Env
	if env == nil {
		env = s.env
	}
	if len(cmd.ExtraEnv) > 0 {
		env = append(slices.Clip(env), cmd.ExtraEnv...)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return checks.CommandResult{}, fmt.Errorf("supervisor: exec: %w", err)
	}
	defer r.Close()
	stdin := s.devNull
	var stdinW *os.File
	if cmd.Stdin != nil {
		if stdin, stdinW, err = os.Pipe(); err != nil {
			w.Close()
			return checks.CommandResult{}, fmt.Errorf("supervisor: exec: %w", err)
		}
		defer stdinW.Close()
	}
	exited := make(chan ExitStatus, 1)
	pid, err := s.reaper.start(func() (int, error) {
		return s.fork(procSpec{argv: cmd.Argv, env: env, dir: cmd.Dir,
			files: []uintptr{stdin.Fd(), w.Fd(), w.Fd()}})
	}, func(st ExitStatus) { exited <- st })
	w.Close()
	if stdinW != nil {
		stdin.Close()
		if err == nil {
			// Written beside the command; a command that does not read
			// its input only makes the write fail, which is fine.
			go func() { _, _ = stdinW.Write(cmd.Stdin); stdinW.Close() }()
		}
	}
	if err != nil {
		var se *startError
		if errors.As(err, &se) {
			return checks.CommandResult{ExitCode: se.code, Output: []byte(err.Error())}, nil
		}
		return checks.CommandResult{}, fmt.Errorf("supervisor: exec: %w", err)
	}

	limit := cmd.OutputLimit
	if limit <= 0 {
		limit = checks.DefaultOutputLimit
	}
	type readResult struct {
		out       []byte
		truncated bool
	}
	read := make(chan readResult, 1)
	go func() {
		out, _ := io.ReadAll(io.LimitReader(r, int64(limit)))
		n, _ := io.Copy(io.Discard, r) // keep draining so the command never blocks
		read <- readResult{out, n > 0}
	}()

	var st ExitStatus
	select {
	case st = <-exited:
	case <-ctx.Done():
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		st = <-exited
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // children it left in its group
	_ = r.SetReadDeadline(time.Now().Add(outputDrainWait))
	res := <-read
	return checks.CommandResult{ExitCode: st.Code(), Output: res.out, Truncated: res.truncated}, nil
}
