package store

// The result of an offline consistency check of a data file (`checkinbot
// check`, DESIGN §8). Problems name records by bucket and id or pseudonym
// only: no message text, keyword, phone number or name.

// Problem is one inconsistency Check found.
type Problem struct {
	Where string // "page 17", "registrant reg_3f2a…", "case case_000003", "outbox 12", …
	What  string
}

// String is the problem as one line.
func (p Problem) String() string { return p.Where + ": " + p.What }

// CheckReport is what Check found: problems, and how many records of each
// kind it read.
type CheckReport struct {
	Problems []Problem
	Counts   map[string]int // per bucket
}
