package port

import "runtime/metrics"

// MemoryInUse reads the heap's spans in use (runtime.MemStats.HeapInuse)
// and the goroutine stacks' (StackInuse) from runtime/metrics, which does
// not stop the world: the stats command and GET /stats are open to every
// client, and runtime.ReadMemStats at each request would let a flood of
// them pause every goroutine of the node that often.
func MemoryInUse() (heap, stack uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return v(0) + v(1), v(2)
}
