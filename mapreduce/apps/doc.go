// Package apps holds the built-in MapReduce jobs selected by name (All):
// wordcount, grep, index, sort, identity and streaming, plus Sequential, a
// single-goroutine in-memory runner of any Job that tests and benchmarks use
// as the reference a distributed run must agree with.
//
// Every App builds its Job from the job's Config alone and keeps no mutable
// state shared between tasks, because the coordinator and every worker
// build the same job independently and run many tasks of it at once (paper
// section 2.1: the functions are the whole program). Per-task state, like
// a streaming job's child process, lives in the Mapper or Reducer a task
// creates (Job.NewMapTask, Job.NewReduceTask).
//
// Config keys (ConfXxx constants): "input" selects the input format of any
// app ("text", the default, or "records"); "pattern" is grep's regexp;
// "mapper" and "reducer" are a streaming job's commands; "sort.boundaries"
// is written by the sort job's Prepare.
//
// Output is one line per reduce output pair, "key\tvalue" or "key" when the
// value is empty, so:
//
//	wordcount  word<TAB>count           a word is a maximal run of unicode.IsLetter runes, case kept
//	grep       line<TAB>count           lines matching the Go regexp conf["pattern"]
//	index      word<TAB>N p1,p2,...      the N input files holding the word, sorted
//	sort       line                     every input line once per occurrence, globally ordered
//	identity   line                     every input line once per occurrence, ordered per partition
//	streaming  whatever the reducer command prints (key<TAB>value lines)
//
// # Sort
//
// The sort job is TeraSort's: the map emits each line as its key, and a range
// partitioner sends keys to partitions in key order, so part-r-00000 <
// part-r-00001 < ... and concatenating the part files gives the sorted
// input. The ranges come from the job's Prepare, which samples lines at
// evenly spread places of every input file through the InputReader and
// picks reduces-1 boundaries among the samples' 10-byte key prefixes,
// stored hex-encoded in conf["sort.boundaries"]. A key's partition is the
// number of boundaries at or below its 10-byte prefix: truncating to a
// prefix keeps byte order, so the partition never decreases as the key
// grows, and ordering holds for any boundaries; sampling only decides how
// balanced the partitions are. Without boundaries every key goes to
// partition 0 (still ordered, one busy reducer).
//
// # Streaming
//
// A streaming job runs its commands with "sh -c", one child process per
// task, as Hadoop Streaming does: the mapper reads the task's input lines on
// stdin (the record's bytes and "\n"; the environment variable
// mapreduce_map_input_file names the input file) and writes key<TAB>value lines on
// stdout (a line without a tab is a key with an empty value); the reducer
// reads key<TAB>value lines (key alone when the value is empty), sorted by
// key, one per value, and every line it writes is an output pair parsed the
// same way. A child's stdout is read by one goroutine the task owns, which
// is the only caller of the task's Emit (the Emit of the task's first Map,
// Reduce or Finish call: the worker must pass the same sink to every call).
// Lines the child writes are bounded by MaxStreamLineBytes. The exit status
// decides: non-zero fails the task with ErrCommandFailed naming the command,
// the status and the last lines of its stderr; a child that exits 0 before
// reading all its input succeeds with what it wrote (the rest of the input
// is dropped), like "head" in a shell pipeline. The child and everything it
// starts are killed when the task's context (the one given to NewMapTask or
// NewReduceTask) is cancelled. Finish always waits for the reader goroutine
// and reaps the child, so a worker abandoning a task cancels its context and
// still calls Finish: until Finish returns, Emit may be called. Record payloads and keys
// must not hold "\n", which would split them into two lines for the child.
package apps
