package main

import (
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 1},
		{"1048576", 1 << 20},
		{"64MiB", 64 << 20},
		{"1GiB", 1 << 30},
		{"4KiB", 4096},
		{"512KB", 512000},
		{"2MB", 2000000},
		{"3B", 3},
		{"1M", 1 << 20},
		{" 8 MiB ", 8 << 20},
		{"8388607TiB", 8388607 << 40},
	}
	for _, c := range good {
		got, err := parseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []string{"", "MiB", "-1", "1.5GiB", "12XB", "abc", "9223372036854775808", "8388608TiB", "8388607TiB1", "0x10"}
	for _, s := range bad {
		if n, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", s, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	cases := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 64 << 20: "64 MiB", 3 << 30: "3 GiB"}
	for n, want := range cases {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseSize: any input either fails or yields a non-negative size that
// a plain-bytes rendering parses back to.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1048576", "64MiB", "1GiB", "-1", "1.5G", "9223372036854775807", "8388608TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		back, err := parseSize(strconv.FormatInt(n, 10))
		if err != nil || back != n {
			t.Fatalf("round trip of %d: %d, %v", n, back, err)
		}
	})
}

func TestSizeFlagString(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1024, 1536, 32 << 20, 3 << 40, 1<<20 + 1} {
		v := n
		s := sizeFlag{&v}.String()
		back, err := parseSize(s)
		if err != nil || back != n {
			t.Errorf("String of %d = %q parses to %d, %v", n, s, back, err)
		}
	}
	v := int64(32 << 20)
	if s := (sizeFlag{&v}).String(); s != "32MiB" {
		t.Errorf("String(32 MiB) = %q", s)
	}
}
