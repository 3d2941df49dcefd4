package main

import (
	"os/exec"
	"syscall"
	"testing"
)

func TestParallelSum(t *testing.T) {
	if got := ParallelSum(16, 1000000); got != 499999500000 {
		t.Fatalf("got %d", got)
	}
}

func TestProcessesPipesSignals(t *testing.T) {
	out, err := exec.Command("sh", "-c", "echo piped").Output()
	if err != nil || string(out) != "piped\n" {
		t.Fatalf("exec: %v %q", err, out)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("signal: %v %v", err, ws)
	}
}
