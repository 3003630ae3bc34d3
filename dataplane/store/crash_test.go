package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test runs a writer in a child process (this test binary,
// re-executed with STORE_CRASH_CHILD set), which reports every operation
// before ("B") and after ("A") it returns over its stdout pipe. The parent
// SIGKILLs it at a random moment, reopens the store and checks the
// crash-safety rule: every block either verifies and holds exactly the
// acknowledged bytes (bytes of the one operation in flight may be old or
// new), or is reported corrupt, which only a block touched by the
// operation in flight may be; versions are the acknowledged one or the one
// being set.

const crashChunkSize = 1 << 20

// crashData is the deterministic payload of an operation.
func crashData(seed uint64, n int) []byte {
	return randBytes(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), n)
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv("STORE_CRASH_CHILD")
	if dir == "" {
		t.Skip("only runs as the crash test's child process")
	}
	seed, _ := strconv.ParseUint(os.Getenv("STORE_CRASH_SEED"), 10, 64)
	crashChild(dir, seed)
}

func crashChild(dir string, seed uint64) {
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	s, err := Open(dir, Options{ChunkSize: crashChunkSize, ScrubRate: -1})
	if err != nil {
		say("E open: %v", err)
		os.Exit(1)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	lengths := map[Handle]int64{}
	for seq := 0; ; seq++ {
		h := Handle(1 + r.IntN(3))
		if _, ok := lengths[h]; !ok {
			v := 1 + r.IntN(5)
			say("B %d C %d %d", seq, h, v)
			if err := s.Create(h, Version(v)); err != nil {
				say("E %v", err)
				os.Exit(1)
			}
			lengths[h] = 0
			say("A %d", seq)
			continue
		}
		l := lengths[h]
		opSeed := r.Uint64() >> 1
		var err error
		switch k := r.IntN(20); {
		case k < 8: // append
			n := pickSize(r)
			if l+int64(n) > crashChunkSize {
				n = int(crashChunkSize - l)
			}
			say("B %d P %d %d %d", seq, h, n, opSeed)
			var off int64
			off, err = s.Append(h, crashData(opSeed, n))
			if err == nil && off != l {
				err = fmt.Errorf("append at %d, want %d", off, l)
			}
			lengths[h] = l + int64(n)
		case k < 14: // write
			n := pickSize(r)
			off := pickOffset(r, min(l+BlockSize, crashChunkSize-int64(n)))
			n = int(min(int64(n), crashChunkSize-off))
			say("B %d W %d %d %d %d", seq, h, off, n, opSeed)
			err = s.WriteAt(h, crashData(opSeed, n), off)
			if n > 0 {
				lengths[h] = max(l, off+int64(n))
			}
		case k < 16: // pad
			to := min(l+r.Int64N(3*BlockSize), crashChunkSize)
			say("B %d D %d %d", seq, h, to)
			err = s.PadTo(h, to)
			lengths[h] = max(l, to)
		case k < 19: // version
			v := r.IntN(1 << 20)
			say("B %d V %d %d", seq, h, v)
			err = s.SetVersion(h, Version(v))
		default:
			say("B %d S %d", seq, h)
			err = s.Sync(h)
		}
		if err != nil {
			say("E %v", err)
			os.Exit(1)
		}
		say("A %d", seq)
		if lengths[h] >= crashChunkSize-BlockSize {
			// Start over on a full chunk so writes keep happening.
			say("B %d X %d", seq, h)
			if err := s.Delete(h); err != nil {
				say("E %v", err)
				os.Exit(1)
			}
			delete(lengths, h)
			say("A %d", seq)
		}
	}
}

// crashModel is the parent's view: acknowledged state plus the operation in
// flight when the child died.
type crashModel struct {
	version map[Handle]Version
	data    map[Handle][]byte
	// in flight
	op       []string
	inflight bool
}

func (m *crashModel) apply(op []string) error {
	num := func(i int) int64 {
		v, err := strconv.ParseInt(op[i], 10, 64)
		if err != nil {
			panic(fmt.Sprintf("bad op %q", op))
		}
		return v
	}
	h := Handle(num(1))
	switch op[0] {
	case "C":
		m.version[h] = Version(num(2))
		m.data[h] = []byte{}
	case "P":
		m.data[h] = append(m.data[h], crashData(uint64(num(3)), int(num(2)))...)
	case "W":
		off, n := num(2), num(3)
		if n == 0 {
			break // writing nothing changes nothing
		}
		d := m.data[h]
		if int(off+n) > len(d) {
			d = append(d, make([]byte, int(off+n)-len(d))...)
		}
		copy(d[off:], crashData(uint64(num(4)), int(n)))
		m.data[h] = d
	case "D":
		if to := num(2); int(to) > len(m.data[h]) {
			m.data[h] = append(m.data[h], make([]byte, int(to)-len(m.data[h]))...)
		}
	case "V":
		m.version[h] = Version(num(2))
	case "S":
	case "X":
		delete(m.version, h)
		delete(m.data, h)
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	return nil
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	iters := 20
	if v, _ := strconv.Atoi(os.Getenv("STORE_CRASH_ITERS")); v > 0 {
		iters = v
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < iters; i++ {
		seed := r.Uint64()
		t.Run(fmt.Sprint(i), func(t *testing.T) { crashOnce(t, seed, r.IntN(300), time.Duration(r.IntN(3000))*time.Microsecond) })
	}
}

func crashOnce(t *testing.T, seed uint64, killAfterAcks int, killDelay time.Duration) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_CRASH_CHILD="+dir, "STORE_CRASH_SEED="+strconv.FormatUint(seed, 10))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			// The test failed before the planned kill: never leave the
			// child running.
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	m := &crashModel{version: map[Handle]Version{}, data: map[Handle][]byte{}}
	rd := bufio.NewReader(stdout)
	acks := 0
	killed := false
	process := func(line string) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "B":
			m.op, m.inflight = f[2:], true
		case f[0] == "A":
			if !m.inflight {
				t.Fatalf("ack without op: %q", line)
			}
			if err := m.apply(m.op); err != nil {
				t.Fatal(err)
			}
			m.inflight = false
			acks++
		case f[0] == "E":
			t.Fatalf("child failed: %s\n%s", line, stderr.String())
		}
	}
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if killed {
				break
			}
			t.Fatalf("child stopped on its own: %v\n%s", err, stderr.String())
		}
		if !strings.HasSuffix(line, "\n") {
			break // the child died mid-line: ignore the fragment
		}
		process(line)
		if !killed && acks >= killAfterAcks {
			time.Sleep(killDelay)
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	cmd.Wait()
	waited = true

	var reported corruptLog
	s := openT(t, dir, Options{ChunkSize: crashChunkSize, ScrubRate: -1, OnCorrupt: reported.add})
	defer func() { s.Close() }()
	checkCrashState(t, s, m, &reported)
	// The recovered store keeps working: padding and holes over whatever
	// the killed writer left past the end read as zeros, and it all
	// survives a clean restart.
	after := map[Handle][]byte{}
	for _, ci := range s.List() {
		if ci.Corrupt {
			continue
		}
		d := make([]byte, ci.Length)
		if n, err := s.ReadAt(ci.Handle, d, 0); int64(n) != ci.Length || (err != nil && err != io.EOF) {
			t.Fatalf("chunk %x: read after recovery: %d, %v", ci.Handle, n, err)
		}
		to := min(ci.Length+100000, crashChunkSize)
		if err := s.PadTo(ci.Handle, to); err != nil {
			t.Fatal(err)
		}
		d = append(d, make([]byte, to-ci.Length)...)
		if at := to + 5000; at+10 <= crashChunkSize {
			if err := s.WriteAt(ci.Handle, []byte("0123456789"), at); err != nil {
				t.Fatal(err)
			}
			d = append(d, make([]byte, 5000)...)
			d = append(d, "0123456789"...)
		}
		after[ci.Handle] = d
	}
	for h, d := range after {
		checkChunk(t, s, h, d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{ChunkSize: crashChunkSize, ScrubRate: -1})
	for h, d := range after {
		checkChunk(t, s, h, d)
	}
	t.Logf("killed after %d acks; in flight: %v %v; corrupt reported: %v", acks, m.inflight, m.op, reported.seen)
}

func checkCrashState(t *testing.T, s *Store, m *crashModel, reported *corruptLog) {
	var fh Handle
	var fOff, fEnd int64 = -1, -1 // byte range the in-flight op may have changed
	var fData []byte
	var fVersion Version
	fOp := ""
	if m.inflight {
		fOp = m.op[0]
		v, _ := strconv.ParseUint(m.op[1], 10, 64)
		fh = Handle(v)
		after := &crashModel{version: map[Handle]Version{}, data: map[Handle][]byte{}}
		for h, d := range m.data {
			after.data[h] = append([]byte(nil), d...)
			after.version[h] = m.version[h]
		}
		if err := after.apply(m.op); err != nil {
			t.Fatal(err)
		}
		fData = after.data[fh]
		fVersion = after.version[fh]
		old := int64(len(m.data[fh]))
		switch fOp {
		case "W":
			off, _ := strconv.ParseInt(m.op[2], 10, 64)
			n, _ := strconv.ParseInt(m.op[3], 10, 64)
			fOff, fEnd = min(off, old), off+n
		case "P", "D":
			fOff, fEnd = old, int64(len(fData))
		}
	}
	list := s.List()
	seen := map[Handle]bool{}
	for _, ci := range list {
		seen[ci.Handle] = true
		want, ok := m.data[ci.Handle]
		inflight := m.inflight && ci.Handle == fh
		if !ok {
			if inflight && fOp == "C" {
				continue // created but not acknowledged: allowed
			}
			t.Fatalf("chunk %x exists but was never acknowledged (in flight: %v)", ci.Handle, m.op)
		}
		if ci.Version != m.version[ci.Handle] && !(inflight && fOp == "V" && ci.Version == fVersion) {
			t.Fatalf("chunk %x version %d, acknowledged %d (in flight %v)", ci.Handle, ci.Version, m.version[ci.Handle], m.op)
		}
		maxLen := int64(len(want))
		if inflight && fData != nil {
			maxLen = max(maxLen, int64(len(fData)))
		}
		if ci.Length < int64(len(want)) || ci.Length > maxLen {
			t.Fatalf("chunk %x length %d, acknowledged %d, at most %d (in flight %v)", ci.Handle, ci.Length, len(want), maxLen, m.op)
		}
		bad := map[int]bool{}
		for b := 0; int64(b)*BlockSize < ci.Length; b++ {
			bs := int64(b) * BlockSize
			be := min(bs+BlockSize, ci.Length)
			got := make([]byte, be-bs)
			n, err := s.ReadAt(ci.Handle, got, bs)
			if err != nil && !(err == io.EOF && int64(n) == be-bs) {
				var ce *ChecksumError
				if !errors.As(err, &ce) || ce.Block != b {
					t.Fatalf("chunk %x block %d: read: %v", ci.Handle, b, err)
				}
				if !inflight || be <= fOff || bs >= fEnd {
					t.Fatalf("chunk %x block %d corrupt but no operation in flight touched it (in flight %v)", ci.Handle, b, m.op)
				}
				bad[b] = true
				continue
			}
			for i := bs; i < be; i++ {
				var old byte
				if i < int64(len(want)) {
					old = want[i]
				}
				okb := got[i-bs] == old
				if !okb && inflight && i >= fOff && i < fEnd {
					okb = got[i-bs] == fData[i]
				}
				if !okb {
					t.Fatalf("chunk %x byte %d = %#x, acknowledged %#x (in flight %v)", ci.Handle, i, got[i-bs], old, m.op)
				}
			}
		}
		if ci.Corrupt != (len(bad) > 0) {
			t.Fatalf("chunk %x: Info.Corrupt = %v, corrupt blocks found %v", ci.Handle, ci.Corrupt, bad)
		}
		rep := reported.get(ci.Handle)
		for b := range bad {
			if !rep[b] {
				t.Fatalf("chunk %x: corrupt block %d not reported (reported %v)", ci.Handle, b, rep)
			}
		}
		for b := range rep {
			if !bad[b] {
				t.Fatalf("chunk %x: block %d reported corrupt but reads fine", ci.Handle, b)
			}
		}
	}
	for h := range m.data {
		if !seen[h] && !(m.inflight && fh == h && fOp == "X") {
			t.Fatalf("acknowledged chunk %x lost", h)
		}
	}
}
