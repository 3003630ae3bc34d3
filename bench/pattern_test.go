package bench

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestPatternFillIsPositionAddressable(t *testing.T) {
	g := NewPattern(42)
	whole := make([]byte, 3<<20)
	g.Fill(7, whole, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		off := rng.Int64N(int64(len(whole)))
		n := rng.IntN(len(whole) - int(off) + 1)
		part := make([]byte, n)
		g.Fill(7, part, off)
		if !bytes.Equal(part, whole[off:off+int64(n)]) {
			t.Fatalf("Fill(off %d, len %d) differs from the same range of a whole-file fill", off, n)
		}
		if err := g.Verify("f", 7, whole[off:off+int64(n)], off); err != nil {
			t.Fatalf("Verify of correct data at %d len %d: %v", off, n, err)
		}
	}
}

func TestPatternVerifyCatchesCorruption(t *testing.T) {
	g := NewPattern(42)
	buf := make([]byte, 1<<20)
	const off = 5 << 20
	g.Fill(3, buf, off)
	for _, pos := range []int{0, 1, 15, 16, 4095, 4096, 4100, 500000, len(buf) - 1} {
		bad := bytes.Clone(buf)
		bad[pos] ^= 0x01
		err := g.Verify("/f", 3, bad, off)
		var ve *VerifyError
		if !errors.As(err, &ve) || !errors.Is(err, ErrVerify) {
			t.Fatalf("flip at %d: Verify = %v, want a *VerifyError wrapping ErrVerify", pos, err)
		}
		if ve.Offset != off+int64(pos) || ve.Path != "/f" {
			t.Errorf("flip at %d: error at %s offset %d, want /f offset %d", pos, ve.Path, ve.Offset, off+pos)
		}
	}
}

func TestPatternVerifyCatchesWrongFileAndWrongOffset(t *testing.T) {
	g := NewPattern(9)
	buf := make([]byte, 256<<10)
	g.Fill(1, buf, 8192)
	if err := g.Verify("f", 2, buf, 8192); !errors.Is(err, ErrVerify) {
		t.Errorf("data of stream 1 verified as stream 2: %v", err)
	}
	// Served from the wrong offset: a whole block, a whole filler period and a
	// single byte away.
	for _, shift := range []int64{4096, patternBytes, 1, -8192} {
		if err := g.Verify("f", 1, buf, 8192+shift); !errors.Is(err, ErrVerify) {
			t.Errorf("data verified at offset shifted by %d: %v", shift, err)
		}
	}
	// Zeros (a hole read back) are not the pattern.
	if err := g.Verify("f", 1, make([]byte, 100), 4096); !errors.Is(err, ErrVerify) {
		t.Errorf("zeros verified: %v", err)
	}
}

func TestPatternSeedsDiffer(t *testing.T) {
	a, b := make([]byte, 8192), make([]byte, 8192)
	NewPattern(1).Fill(1, a, 0)
	NewPattern(2).Fill(1, b, 0)
	if bytes.Equal(a[16:], b[16:]) {
		t.Error("two seeds produced the same filler")
	}
}

// BenchmarkPatternVerify measures the harness's own cost per verified byte
// (compare with the read workloads' MiB/s: it must be far above them).
func BenchmarkPatternVerify(b *testing.B) {
	g := NewPattern(1)
	buf := make([]byte, 1<<20)
	g.Fill(3, buf, 1<<30)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := g.Verify("f", 3, buf, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatternFill measures the cost of generating written data.
func BenchmarkPatternFill(b *testing.B) {
	g := NewPattern(1)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		g.Fill(3, buf, 1<<30)
	}
}
