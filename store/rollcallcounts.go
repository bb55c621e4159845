package store

// RollCallCounts is where a roll call's members stand, as numbers kept by
// the engine in the transactions that move them (so reading them costs
// the same for 10 members as for 100,000). Members = Responded + Pending
// + Missed + Unprompted. Prompted counts the members whose prompt the
// platform accepted (reached their phone's messenger), whatever they did
// next: a pending member not counted there has not been reached yet.
type RollCallCounts struct {
	Members    int
	Responded  int
	Pending    int
	Missed     int
	Unprompted int
	Prompted   int
}
