// Package cluster implements the in-process actors.Broker: InProc, for one
// node alone (the default of `make run`), or for several nodes in one
// process sharing a Fabric (tests, embedding).
//
// The broker that joins nodes in different processes, through Redis, is
// the sub-package cluster/redis; cluster/redistest runs a real
// redis-server for tests.
package cluster
