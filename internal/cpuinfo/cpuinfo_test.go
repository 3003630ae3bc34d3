package cpuinfo

import "testing"

func TestDescribe(t *testing.T) {
	in := Describe()
	if in.LogicalCores <= 0 {
		t.Fatalf("logical cores = %d", in.LogicalCores)
	}
	if in.Features == nil {
		t.Fatal("features nil; want an empty list at least")
	}
	t.Logf("%+v", in)
}
