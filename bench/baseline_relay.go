package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RelayCommand builds the command that runs one relay hop in a child process
// with the given arguments (the flags of RunRelayNodeCommand). `gfs bench`
// re-executes itself as `gfs bench-relay-node ARGS`; tests re-execute the
// test binary.
type RelayCommand func(ctx context.Context, args []string) *exec.Cmd

// RunRelayNodeCommand is the body of a relay child process: it parses args
// (-dir DIR [-next HOST:PORT] [-addr HOST:PORT]), serves, prints "ready ADDR"
// on stdout once it listens, and exits when stdin reaches EOF (its parent
// closed it or died) or ctx ends.
func RunRelayNodeCommand(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	opts, err := parseRelayArgs(args)
	if err != nil {
		return err
	}
	node, err := NewRelayNode(opts)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- node.Serve() }()
	if _, err := fmt.Fprintf(stdout, "ready %s\n", node.Addr()); err != nil {
		node.Close()
		<-served
		return err
	}
	stdinDone := make(chan struct{})
	go func() {
		// Returns at EOF; an owned goroutine only in the sense that the
		// process ends right after: stdin cannot be interrupted portably.
		io.Copy(io.Discard, stdin)
		close(stdinDone)
	}()
	select {
	case <-ctx.Done():
	case <-stdinDone:
	case err := <-served:
		return err
	}
	cerr := node.Close()
	return errors.Join(<-served, cerr)
}

func parseRelayArgs(args []string) (RelayNodeOptions, error) {
	var o RelayNodeOptions
	for i := 0; i < len(args); i++ {
		if i+1 >= len(args) {
			return o, fmt.Errorf("relay node: flag %s needs a value", args[i])
		}
		switch args[i] {
		case "-dir":
			o.Dir = args[i+1]
		case "-next":
			o.Next = args[i+1]
		case "-addr":
			o.Addr = args[i+1]
		default:
			return o, fmt.Errorf("relay node: unknown flag %q (want -dir, -next, -addr)", args[i])
		}
		i++
	}
	if o.Dir == "" {
		return o, errors.New("relay node: -dir is required")
	}
	return o, nil
}

// relayChild is one started hop.
type relayChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
	addr   string
}

// stop closes the child's stdin (it exits) and waits for it.
func (c *relayChild) stop() error {
	c.stdin.Close()
	err := c.cmd.Wait()
	if err != nil {
		return fmt.Errorf("relay node %s: %w (stderr: %s)", c.addr, err, strings.TrimSpace(c.stderr.String()))
	}
	return nil
}

func startRelayChild(ctx context.Context, command RelayCommand, args []string) (*relayChild, error) {
	c := &relayChild{cmd: command(ctx, args)}
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start relay node: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if err != nil || !ok {
		c.stdin.Close()
		werr := c.cmd.Wait()
		return nil, fmt.Errorf("relay node did not start: read %q: %v, exit: %v, stderr: %s", line, err, werr, strings.TrimSpace(c.stderr.String()))
	}
	c.addr = addr
	return c, nil
}

// measureRelay starts a chain of hops child processes (one per replica of a
// write: the replication the workloads use) and pushes
// clients concurrent streams of 1 MiB writes through it for d; each stream
// ends with a half-close and waits for the chain's acknowledgement, so the
// figure counts bytes that reached every hop's disk.
func measureRelay(ctx context.Context, dir string, command RelayCommand, hops, clients int, d time.Duration, prog *progress) (b Baseline, err error) {
	if command == nil {
		return Baseline{}, errors.New("relay baseline: no RelayCommand to start child processes")
	}
	children := make([]*relayChild, 0, hops)
	defer func() {
		for _, c := range children {
			err = errors.Join(err, c.stop())
		}
	}()
	next := ""
	for hop := hops - 1; hop >= 0; hop-- {
		hopDir := filepath.Join(dir, fmt.Sprintf("relay-hop-%d", hop))
		if err := os.MkdirAll(hopDir, 0o755); err != nil {
			return Baseline{}, fmt.Errorf("relay baseline: %w", err)
		}
		defer os.RemoveAll(hopDir)
		args := []string{"-dir", hopDir}
		if next != "" {
			args = append(args, "-next", next)
		}
		c, err := startRelayChild(ctx, command, args)
		if err != nil {
			return Baseline{}, fmt.Errorf("relay baseline: %w", err)
		}
		children = append(children, c)
		next = c.addr
	}

	c := &counters{}
	stop := prog.start("baseline relay", c)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, clients)
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = relayStream(ctx, next, deadline, c)
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return Baseline{}, fmt.Errorf("relay baseline: %w", err)
	}
	return Baseline{
		Name: BaselineRelay, Unit: UnitMiBPerS, Clients: clients, Runs: 1, Seconds: secs,
		Value: float64(c.bytes.Load()) / (1 << 20) / secs,
		Parts: map[string]float64{"hops": float64(hops)},
	}, nil
}

// relayStream writes 1 MiB packets to the chain's head until deadline, then
// half-closes and waits for the acknowledgement.
func relayStream(ctx context.Context, head string, deadline time.Time, c *counters) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", head)
	if err != nil {
		return err
	}
	defer conn.Close()
	stopOnCancel := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopOnCancel()
	buf := make([]byte, relayBufBytes)
	NewPattern(3).Fill(3, buf, 0)
	for time.Now().Before(deadline) {
		if _, err := conn.Write(buf); err != nil {
			return err
		}
		c.bytes.Add(int64(len(buf)))
		c.ops.Add(1)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	var ack [1]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return fmt.Errorf("wait for the chain's ack: %w", err)
	}
	return nil
}
