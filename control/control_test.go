package control_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestErrorfCodeRoundTrip(t *testing.T) {
	for code := range controlpb.ErrorCode_name {
		c := controlpb.ErrorCode(code)
		err := control.Errorf(c, "thing %d failed", 7)
		if got := control.Code(err); got != c {
			t.Errorf("Code(Errorf(%v)) = %v", c, got)
		}
		if got := control.Code(fmt.Errorf("wrapped: %w", err)); got != c {
			t.Errorf("Code(wrapped Errorf(%v)) = %v", c, got)
		}
		if st, _ := status.FromError(err); st.Code() != control.GRPCCode(c) || st.Message() != "thing 7 failed" {
			t.Errorf("status of %v = %v %q", c, st.Code(), st.Message())
		}
	}
	if got := control.Code(nil); got != controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Errorf("Code(nil) = %v", got)
	}
	if got := control.Code(errors.New("plain")); got != controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Errorf("Code(plain) = %v", got)
	}
	if got := control.Code(status.Error(codes.NotFound, "no detail")); got != controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Errorf("Code(status without detail) = %v", got)
	}
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("x"), false},
		{status.Error(codes.Unavailable, "down"), true},
		{fmt.Errorf("w: %w", status.Error(codes.DeadlineExceeded, "slow")), true},
		{control.Errorf(controlpb.ErrorCode_ERROR_CODE_NOT_FOUND, "x"), false},
		{control.Errorf(controlpb.ErrorCode_ERROR_CODE_NO_LIVE_REPLICA, "x"), true},
		{control.Errorf(controlpb.ErrorCode_ERROR_CODE_NO_SPACE, "x"), false},
		{control.Errorf(controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN, "x"), true},
	}
	for i, c := range cases {
		if got := control.Retryable(c.err); got != c.want {
			t.Errorf("case %d: Retryable(%v) = %v, want %v", i, c.err, got, c.want)
		}
	}
}

// statServer answers Stat with an error and records whether the call had a deadline.
type statServer struct {
	controlpb.UnimplementedMasterServer
	deadline chan time.Duration
}

func (s *statServer) Stat(ctx context.Context, req *controlpb.StatRequest) (*controlpb.StatResponse, error) {
	d, ok := ctx.Deadline()
	left := time.Duration(-1)
	if ok {
		left = time.Until(d)
	}
	s.deadline <- left
	if req.GetPath() == "/ok" {
		return &controlpb.StatResponse{Info: &controlpb.FileInfo{Path: "/ok"}}, nil
	}
	return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_NOT_FOUND, "stat %s: no such file", req.GetPath())
}

func TestDialOverRealGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(control.NewServerOptions(control.ServerOptions{})...)
	ss := &statServer{deadline: make(chan time.Duration, 4)}
	controlpb.RegisterMasterServer(srv, ss)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	cc, err := control.Dial(lis.Addr().String(), control.DialOptions{CallTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	mc := controlpb.NewMasterClient(cc)

	// No deadline from the caller: the interceptor adds CallTimeout.
	_, err = mc.Stat(context.Background(), &controlpb.StatRequest{Path: "/missing"})
	if got := control.Code(err); got != controlpb.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("Code = %v (err %v)", got, err)
	}
	if left := <-ss.deadline; left <= 30*time.Minute {
		t.Fatalf("server saw deadline %v, want about the 1h CallTimeout", left)
	}

	// The caller's deadline wins.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := mc.Stat(ctx, &controlpb.StatRequest{Path: "/ok"})
	if err != nil || resp.GetInfo().GetPath() != "/ok" {
		t.Fatalf("Stat /ok = %v, %v", resp, err)
	}
	if left := <-ss.deadline; left < 0 || left > time.Minute {
		t.Fatalf("server saw deadline %v, want the caller's minute", left)
	}
}

func TestDialBadAddress(t *testing.T) {
	if _, err := control.Dial("", control.DialOptions{}); !errors.Is(err, control.ErrBadAddress) {
		t.Fatalf("Dial(\"\") = %v, want ErrBadAddress", err)
	}
}

func TestDialUnreachableFailsWithinDeadline(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	cc, err := control.Dial(addr, control.DialOptions{CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = controlpb.NewMasterClient(cc).Stat(context.Background(), &controlpb.StatRequest{Path: "/x"})
	if err == nil || !control.Retryable(err) {
		t.Fatalf("Stat on closed port = %v, want a retryable error", err)
	}
}
