package apps

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/gfs-go/gfs/mapreduce"
)

// MaxStreamLineBytes bounds a line a streaming command writes (without its
// "\n"); a longer one fails the task.
const MaxStreamLineBytes = 1 << 20

// ErrCommandFailed is a streaming command that exited with a non-zero
// status or was killed, or whose output broke the line protocol.
var ErrCommandFailed = errors.New("apps: streaming command failed")

const (
	// stderrTailBytes and stderrTailLines bound what an error quotes of a
	// failed command's stderr.
	stderrTailBytes = 4 << 10
	stderrTailLines = 10
	// streamWriteBuffer batches the lines written to a child's stdin.
	streamWriteBuffer = 64 << 10
	// streamWaitDelay bounds how long reaping a child that has exited
	// waits for grandchildren still holding its stderr open.
	streamWaitDelay = 2 * time.Second
)

// Streaming builds a Hadoop Streaming job (see the package doc) from
// conf["mapper"] and conf["reducer"], shell commands run with "sh -c". The
// mapper is required; without a reducer the map output pairs are the
// output (Hadoop's default, IdentityReducer).
func Streaming(conf mapreduce.Config) (*mapreduce.Job, error) {
	in, err := inputFormat(conf)
	if err != nil {
		return nil, err
	}
	mapper, reducer := conf[ConfMapper], conf[ConfReducer]
	if strings.TrimSpace(mapper) == "" {
		return nil, fmt.Errorf("%w: streaming needs a %s command", ErrBadConfig, ConfMapper)
	}
	j := &mapreduce.Job{
		Input: in,
		NewMapTask: func(ctx context.Context) (mapreduce.Mapper, error) {
			return &streamMapper{child: newChild(ctx, "mapper", mapper)}, nil
		},
	}
	if strings.TrimSpace(reducer) == "" {
		j.Reduce = reducePairs
	} else {
		j.NewReduceTask = func(ctx context.Context) (mapreduce.Reducer, error) {
			return &streamReducer{child: newChild(ctx, "reducer", reducer)}, nil
		}
	}
	return j, nil
}

// reducePairs passes every pair through.
func reducePairs(_ context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
	for {
		v, ok := values.Next()
		if !ok {
			return nil
		}
		if err := emit(key, v); err != nil {
			return err
		}
	}
}

// streamMapper feeds a map task's records to the mapper command.
type streamMapper struct{ child *child }

func (m *streamMapper) Map(_ context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
	if err := m.child.start(emit, "mapreduce_map_input_file="+rec.Path); err != nil {
		return err
	}
	return m.child.writeLine(rec.Data, nil)
}

func (m *streamMapper) Finish(_ context.Context, emit mapreduce.Emit) error {
	return m.child.finish(emit)
}

// streamReducer feeds a reduce task's sorted pairs to the reducer command.
type streamReducer struct{ child *child }

func (r *streamReducer) Reduce(_ context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
	if err := r.child.start(emit); err != nil {
		return err
	}
	for {
		v, ok := values.Next()
		if !ok {
			return nil
		}
		if err := r.child.writeLine(key, v); err != nil {
			return err
		}
	}
}

func (r *streamReducer) Finish(_ context.Context, emit mapreduce.Emit) error {
	return r.child.finish(emit)
}

// child is one task's streaming process. The task's goroutine (Map, Reduce,
// Finish) writes its stdin; one goroutine, started with the process, reads
// its stdout, calls emit, and reaps it. The task's goroutine reads that
// goroutine's results only after done is closed.
type child struct {
	ctx     context.Context // the task's: cancelling it kills the child
	role    string          // "mapper" or "reducer", for errors
	command string

	started  bool // task goroutine only
	startErr error
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	in       *bufio.Writer
	drop     bool // the child exited 0 without reading all input: drop the rest
	stderr   tailBuffer

	done    chan struct{} // closed when the reader has reaped the child
	readErr error         // set by the reader before done closes
	waitErr error         // likewise
}

func newChild(ctx context.Context, role, command string) *child {
	return &child{ctx: ctx, role: role, command: command}
}

// start runs the command on the first call; emit is where its output goes.
func (c *child) start(emit mapreduce.Emit, env ...string) error {
	if c.started {
		return c.startErr
	}
	c.started = true
	cmd := exec.CommandContext(c.ctx, "sh", "-c", c.command)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &c.stderr
	cmd.WaitDelay = streamWaitDelay
	killGroupOnCancel(cmd)
	stdin, err := cmd.StdinPipe()
	if err == nil {
		var stdout io.ReadCloser
		if stdout, err = cmd.StdoutPipe(); err == nil {
			if err = cmd.Start(); err == nil {
				c.cmd, c.stdin = cmd, stdin
				c.in = bufio.NewWriterSize(stdin, streamWriteBuffer)
				c.done = make(chan struct{})
				go c.read(stdout, emit)
				return nil
			}
		}
	}
	c.startErr = fmt.Errorf("%w: start %s command %q: %v", ErrCommandFailed, c.role, c.command, err)
	return c.startErr
}

// read is the child's reader goroutine: it turns stdout lines into pairs
// until EOF or the first error, then reaps the child.
func (c *child) read(stdout io.Reader, emit mapreduce.Emit) {
	defer close(c.done)
	if err := readPairs(stdout, MaxStreamLineBytes, emit); err != nil {
		var ee emitError
		if errors.As(err, &ee) {
			c.readErr = fmt.Errorf("streaming %s output: %w", c.role, ee.err)
		} else {
			c.readErr = fmt.Errorf("%w: %s command %q: %v", ErrCommandFailed, c.role, c.command, err)
		}
		// Nobody reads its output any more: stop it, or it blocks on a
		// full pipe and the task's writes to its stdin block with it.
		killGroup(c.cmd)
	}
	c.waitErr = c.cmd.Wait()
}

// emitError marks an error returned by Emit, which is the worker's, not
// the command's.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// readPairs decodes a streaming command's output: lines ending in "\n" (the
// last one may lack it) with one trailing "\r" dropped, each split at its
// first tab into key and value (no tab: an empty value), and emits them.
// A line over maxLine bytes is an error; so is an Emit error (as emitError).
func readPairs(r io.Reader, maxLine int, emit mapreduce.Emit) error {
	br := bufio.NewReaderSize(r, maxLine+2) // line, "\r", "\n"
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("wrote a line longer than %d bytes", maxLine)
		}
		if len(line) > 0 {
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			if len(line) > maxLine {
				return fmt.Errorf("wrote a line longer than %d bytes", maxLine)
			}
			key, value, _ := bytes.Cut(line, []byte("\t"))
			if e := emit(key, value); e != nil {
				return emitError{e}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read output: %v", err)
		}
	}
}

// writeLine writes key, and "\t" and value when value is not empty, and "\n".
func (c *child) writeLine(key, value []byte) error {
	if c.drop {
		return nil
	}
	select {
	case <-c.done:
		return c.stopped()
	default:
	}
	c.in.Write(key)
	if len(value) > 0 {
		c.in.WriteByte('\t')
		c.in.Write(value)
	}
	if err := c.in.WriteByte('\n'); err != nil {
		return c.stopped()
	}
	return nil
}

// stopped handles a child that no longer takes input (a write failed, or
// the reader finished): it waits for the child and returns its failure, or
// nil and drops the remaining input when it exited 0.
func (c *child) stopped() error {
	<-c.done
	if err := c.result(); err != nil {
		return err
	}
	c.drop = true
	return nil
}

// finish closes the child's stdin and waits until its output is emitted
// and it is reaped.
func (c *child) finish(emit mapreduce.Emit) error {
	if err := c.start(emit); err != nil {
		return err
	}
	var werr error
	if !c.drop {
		werr = c.in.Flush()
	}
	cerr := c.stdin.Close()
	<-c.done
	if err := c.result(); err != nil {
		return err
	}
	// A flush or close that failed because the child had exited 0 without
	// reading everything is what drop means; anything else is an error.
	if werr != nil && !c.drop && !isBrokenPipe(werr) {
		return fmt.Errorf("%w: write to %s command %q: %v", ErrCommandFailed, c.role, c.command, werr)
	}
	if cerr != nil && !errors.Is(cerr, os.ErrClosed) && !isBrokenPipe(cerr) {
		return fmt.Errorf("%w: close %s command %q input: %v", ErrCommandFailed, c.role, c.command, cerr)
	}
	return nil
}

// result is the child's outcome; call it after done is closed.
func (c *child) result() error {
	if c.readErr == nil && c.waitErr == nil {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		// Killed for the cancellation; its pipes may have been closed
		// under the reader too (exec's WaitDelay, for descendants that
		// escaped the process group): neither is the command's fault.
		return fmt.Errorf("streaming %s command %q: %w", c.role, c.command, err)
	}
	if c.readErr != nil {
		return c.readErr
	}
	msg := fmt.Sprintf("%s command %q: %v", c.role, c.command, c.waitErr)
	if tail := c.stderr.lastLines(stderrTailLines); tail != "" {
		msg += "; stderr: " + tail
	}
	return fmt.Errorf("%w: %s", ErrCommandFailed, msg)
}

// tailBuffer keeps the last stderrTailBytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // written by exec's copying goroutine
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrTailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// lastLines returns up to n last lines, joined with " | ".
func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, " | "))
}
