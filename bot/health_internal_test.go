package bot

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestOutageEndsOnlyOnAWriteBegunAfterIt: a write already under way when
// the outage was noticed cannot end it (CI once saw an acknowledgement
// batch begun before a full disk commit after the first refused message,
// and the citizen was told "not saved" twice in one outage).
func TestOutageEndsOnlyOnAWriteBegunAfterIt(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var h health
	before := time.Now()
	h.fail(log, errors.New("no space left on device"))
	if !h.notify("k") {
		t.Fatal("the first citizen of the outage is not told")
	}
	h.ok(log, before)
	if !h.down {
		t.Fatal("a write begun before the outage ended it")
	}
	if h.notify("k") {
		t.Fatal("the citizen would be told twice in one outage")
	}
	h.ok(log, time.Now())
	if h.down {
		t.Fatal("a write begun during the outage did not end it")
	}
	if !h.notify("k") {
		t.Fatal("after the outage, a new outage's notice is not owed")
	}
}
