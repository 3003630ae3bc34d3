package mapreduce

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/mapreduce/mrpb"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// JobRequest is a job to submit.
type JobRequest struct {
	App         string   // registered app name (required)
	Conf        Config   // the app's arguments
	Inputs      []string // GFS files or directories (every file under them)
	Output      string   // GFS directory that must not exist
	Reduces     int      // R; 0 = one per worker slot
	InputFormat string   // "text" (default) or "records"
	User        string
}

// JobStatus is a job's progress as the coordinator reports it.
type JobStatus struct {
	ID          string             `json:"job"`
	State       string             `json:"state"` // running, succeeded, failed
	App         string             `json:"app"`
	Inputs      []string           `json:"inputs"`
	Output      string             `json:"output"`
	Maps        int                `json:"maps"`
	MapsDone    int                `json:"maps_done"`
	Reduces     int                `json:"reduces"`
	ReducesDone int                `json:"reduces_done"`
	Submitted   time.Time          `json:"submitted"`
	Ended       time.Time          `json:"ended,omitzero"`
	Error       string             `json:"error,omitempty"`
	Counters    tasktable.Counters `json:"counters"`
	// Phases: map (submission to the last map done), reduce (to the last
	// partition committed), commit (to _SUCCESS written).
	MapPhase    time.Duration `json:"map_phase_ns"`
	ReducePhase time.Duration `json:"reduce_phase_ns"`
	CommitPhase time.Duration `json:"commit_phase_ns"`
}

// Done reports whether the job ended.
func (s JobStatus) Done() bool { return s.State != tasktable.Running.String() }

// Client talks to a coordinator as a submitter.
type Client struct {
	addr string
	cc   *grpc.ClientConn
	c    mrpb.CoordinatorClient
}

// ErrNoCoordinator is a coordinator that cannot be reached.
var ErrNoCoordinator = errors.New("mapreduce: coordinator unreachable")

// DialCoordinator connects to the coordinator at addr (TLS when cfg is
// non-nil). Like grpc.NewClient it does not wait for the connection.
func DialCoordinator(addr string, cfg *tls.Config) (*Client, error) {
	cc, err := control.Dial(addr, control.DialOptions{TLS: cfg})
	if err != nil {
		return nil, err
	}
	return &Client{addr: addr, cc: cc, c: mrpb.NewCoordinatorClient(cc)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

// Submit starts a job and returns its id. Retries of the same request (a
// lost reply) return the same job.
func (c *Client) Submit(ctx context.Context, req JobRequest) (string, error) {
	pb := &mrpb.SubmitRequest{App: req.App, Conf: req.Conf, Inputs: req.Inputs, Output: req.Output,
		Reduces: int32(req.Reduces), InputFormat: req.InputFormat, RequestId: newRequestID(), User: req.User}
	var resp *mrpb.SubmitResponse
	var err error
	for try := 0; try < 3; try++ {
		resp, err = c.c.Submit(ctx, pb)
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			break
		}
		sleep(ctx, time.Duration(try+1)*300*time.Millisecond)
	}
	if err != nil {
		return "", rpcError(err)
	}
	return resp.GetJob(), nil
}

// Status returns one job's status, or every job's when job is "".
func (c *Client) Status(ctx context.Context, job string) ([]JobStatus, error) {
	resp, err := c.c.Status(ctx, &mrpb.StatusRequest{Job: job})
	if err != nil {
		return nil, rpcError(err)
	}
	out := make([]JobStatus, 0, len(resp.GetJobs()))
	for _, j := range resp.GetJobs() {
		s := JobStatus{ID: j.GetJob(), State: j.GetState(), App: j.GetApp(), Inputs: j.GetInputs(), Output: j.GetOutput(),
			Maps: int(j.GetMaps()), MapsDone: int(j.GetMapsDone()), Reduces: int(j.GetReduces()), ReducesDone: int(j.GetReducesDone()),
			Submitted: time.UnixMilli(j.GetSubmittedUnixMs()), Error: j.GetError(),
			MapPhase:    time.Duration(j.GetPhaseMapMs()) * time.Millisecond,
			ReducePhase: time.Duration(j.GetPhaseReduceMs()) * time.Millisecond,
			CommitPhase: time.Duration(j.GetPhaseCommitMs()) * time.Millisecond}
		if ms := j.GetEndedUnixMs(); ms != 0 {
			s.Ended = time.UnixMilli(ms)
		}
		if j.GetCountersJson() != "" {
			if err := json.Unmarshal([]byte(j.GetCountersJson()), &s.Counters); err != nil {
				return nil, fmt.Errorf("job %s: counters: %w", s.ID, err)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Workers returns how many workers are registered.
func (c *Client) Workers(ctx context.Context) (int, error) {
	resp, err := c.c.Status(ctx, &mrpb.StatusRequest{})
	if err != nil {
		return 0, rpcError(err)
	}
	return int(resp.GetWorkers()), nil
}

// Wait polls a job until it ends, calling progress (when non-nil) with
// each status seen. It returns the final status; a failed job also gives
// an error carrying the coordinator's reason.
func (c *Client) Wait(ctx context.Context, job string, every time.Duration, progress func(JobStatus)) (JobStatus, error) {
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	unreachable := 0
	for {
		sts, err := c.Status(ctx, job)
		switch {
		case err == nil && len(sts) == 1:
			unreachable = 0
			s := sts[0]
			if progress != nil {
				progress(s)
			}
			if s.Done() {
				if s.State != tasktable.Succeeded.String() {
					return s, fmt.Errorf("job %s failed: %s", s.ID, s.Error)
				}
				return s, nil
			}
		case errors.Is(err, ErrNoCoordinator) && ctx.Err() == nil:
			// A restarting coordinator resumes the job from its journal: keep
			// asking for a while.
			if unreachable++; unreachable > int(2*time.Minute/every) {
				return JobStatus{}, err
			}
		case err != nil:
			return JobStatus{}, err
		}
		select {
		case <-ctx.Done():
			return JobStatus{}, ctx.Err()
		case <-time.After(every):
		}
	}
}

// rpcError turns a coordinator status into an error a user reads.
func rpcError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
		return fmt.Errorf("%w: %s", ErrNoCoordinator, st.Message())
	}
	return errors.New(st.Message())
}
