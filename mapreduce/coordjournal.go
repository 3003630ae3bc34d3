package mapreduce

import (
	"encoding/json"
	"fmt"

	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// The coordinator's journal holds one JSON entry per record
// (mapreduce/journal frames them):
//
//	{"type":"start","incarnation":N}        a coordinator started
//	{"type":"job","job_record":{...}}        a job was accepted (before Submit answers)
//	{"type":"commit","job":ID,"partition":P} partition P was renamed into place
//	{"type":"end","job":ID,"state":...}      the job's output was finalised
//
// A restart replays them: ended jobs keep their status; running jobs are
// submitted again with their committed partitions restored.
type entry struct {
	Type        string             `json:"type"`
	Incarnation uint64             `json:"incarnation,omitempty"`
	JobRec      *jobRecord         `json:"job_record,omitempty"`
	Job         tasktable.JobID    `json:"job,omitempty"`
	Partition   int                `json:"partition,omitempty"`
	State       string             `json:"state,omitempty"`
	Error       string             `json:"error,omitempty"`
	Counters    tasktable.Counters `json:"counters,omitzero"`
	EndedMs     int64              `json:"ended_ms,omitempty"`
}

// jobRecord is everything needed to run a job again.
type jobRecord struct {
	ID          tasktable.JobID `json:"id"`
	App         string          `json:"app"`
	Conf        Config          `json:"conf,omitempty"`
	Inputs      []string        `json:"inputs"`
	Output      string          `json:"output"`
	Reduces     int             `json:"reduces"`
	Format      string          `json:"format"`
	Splits      []splitRecord   `json:"splits"`
	ChunkSize   int64           `json:"chunk_size"`
	SubmittedMs int64           `json:"submitted_ms"`
	RequestID   string          `json:"request_id,omitempty"`
	User        string          `json:"user,omitempty"`
}

type splitRecord struct {
	Path     string `json:"path"`
	Offset   int64  `json:"offset"`
	Length   int64  `json:"length"`
	FileSize int64  `json:"file_size"`
}

func (e entry) marshal() ([]byte, error) { return json.Marshal(e) }

// replayed is the state a journal describes.
type replayed struct {
	incarnation uint64
	jobs        int // job records seen: the next id is jobs+1
	order       []*jobRecord
	commits     map[tasktable.JobID]map[int]tasktable.Counters
	ends        map[tasktable.JobID]entry
}

// replay folds journal records into state, rejecting records that do not
// make sense (unknown type, a commit of an unknown job or partition).
func replay(recs [][]byte) (replayed, error) {
	st := replayed{commits: map[tasktable.JobID]map[int]tasktable.Counters{}, ends: map[tasktable.JobID]entry{}}
	byID := map[tasktable.JobID]*jobRecord{}
	for i, b := range recs {
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return st, fmt.Errorf("record %d: %w", i, err)
		}
		switch e.Type {
		case "start":
			st.incarnation = max(st.incarnation, e.Incarnation)
		case "job":
			r := e.JobRec
			if r == nil || r.ID == "" || r.Reduces < 1 || r.Output == "" || byID[r.ID] != nil {
				return st, fmt.Errorf("record %d: bad job record", i)
			}
			for _, s := range r.Splits {
				if s.Offset < 0 || s.Length < 0 || s.Offset+s.Length > s.FileSize {
					return st, fmt.Errorf("record %d: job %s: bad split %+v", i, r.ID, s)
				}
			}
			byID[r.ID] = r
			st.order = append(st.order, r)
			st.jobs++
		case "commit":
			r := byID[e.Job]
			if r == nil || e.Partition < 0 || e.Partition >= r.Reduces {
				return st, fmt.Errorf("record %d: commit of unknown job %q partition %d", i, e.Job, e.Partition)
			}
			if st.commits[e.Job] == nil {
				st.commits[e.Job] = map[int]tasktable.Counters{}
			}
			st.commits[e.Job][e.Partition] = e.Counters
		case "end":
			if byID[e.Job] == nil {
				return st, fmt.Errorf("record %d: end of unknown job %q", i, e.Job)
			}
			st.ends[e.Job] = e
		default:
			return st, fmt.Errorf("record %d: unknown type %q", i, e.Type)
		}
	}
	return st, nil
}

func parseState(s string) tasktable.JobState {
	switch s {
	case "succeeded":
		return tasktable.Succeeded
	case "failed":
		return tasktable.Failed
	}
	return tasktable.Running
}
