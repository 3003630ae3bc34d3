package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func describePlatform(m *Machine, dataDir string) {
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.CPUModel = firstField("/proc/cpuinfo", "model name")
	if v := firstField("/proc/meminfo", "MemTotal"); v != "" {
		// "24684088 kB"
		if kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64); err == nil {
			m.MemoryBytes = kb << 10
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if d := describeDisk(dataDir); d != "" {
		m.Disk = d
	}
}

// firstField returns the value of the first "key : value" line of a /proc file.
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// describeDisk finds the mount holding dir (by device number, through
// /proc/self/mountinfo) and the block device's rotational flag and size.
func describeDisk(dir string) string {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return ""
	}
	major, minor := unix.Major(st.Dev), unix.Minor(st.Dev)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	want := fmt.Sprintf("%d:%d", major, minor)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[2] != want {
			continue
		}
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(fields) {
			continue
		}
		fsType, source := fields[sep+1], fields[sep+2]
		desc := fmt.Sprintf("%s %s (mounted at %s)", source, fsType, fields[4])
		sys := fmt.Sprintf("/sys/dev/block/%s", want)
		if rot, err := os.ReadFile(filepath.Join(sys, "queue", "rotational")); err == nil {
			desc += " rotational=" + strings.TrimSpace(string(rot))
		}
		if sz, err := os.ReadFile(filepath.Join(sys, "size")); err == nil {
			if sectors, err := strconv.ParseInt(strings.TrimSpace(string(sz)), 10, 64); err == nil {
				desc += " size=" + formatBytes(sectors*512)
			}
		}
		return desc
	}
	return ""
}
