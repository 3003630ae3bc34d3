// Package httpserv is the operator HTTP listener every daemon (master,
// chunkserver, MapReduce coordinator and worker) serves on its own
// -http-addr, off the data path: /metrics from the process's one Prometheus
// registry, /healthz (alive), /readyz (the daemon's own readiness check) and
// /debug/pprof/. Under TLS the pprof handlers require a verified client
// certificate, because profiles reveal memory contents and cost CPU.
package httpserv
