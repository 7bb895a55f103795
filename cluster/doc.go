// Package cluster implements the in-process broker (port.Broker): InProc,
// for one node alone (the default of `make run`), or for several nodes in
// one process sharing a Fabric (tests, embedding). Like the Redis broker,
// it builds on the actor API of package actors/port, never on the actor
// runtime itself.
//
// The broker that joins nodes in different processes, through Redis, is
// the sub-package cluster/redis; cluster/redistest runs a real
// redis-server for tests.
package cluster
