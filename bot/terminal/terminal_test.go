package terminal

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
)

func TestInboundMapping(t *testing.T) {
	term := New(Options{User: "u"}, nil)
	for _, c := range []struct {
		line string
		kind dialogs.InputKind
	}{
		{"hello", dialogs.KindText},
		{":location 11.55,104.92", dialogs.KindLocation},
		{":location NaN,NaN", dialogs.KindText},
		{":location 95,10", dialogs.KindText},
		{":sticker", dialogs.KindMedia},
		{":voice", dialogs.KindMedia},
	} {
		if got := term.inbound(c.line).Kind; got != c.kind {
			t.Errorf("%q: kind %v, want %v", c.line, got, c.kind)
		}
	}
}

// TestHugeLineIsNotFatal: a line of several megabytes is cut, answered,
// and the session goes on.
func TestHugeLineIsNotFatal(t *testing.T) {
	r := testkit.Runner(t)
	var out bytes.Buffer
	in := strings.NewReader(strings.Repeat("x", 3<<20) + "\nhello\n")
	term := New(Options{In: in, Out: &out, User: "u"}, r)
	r.Register(term.Name(), term)
	if err := term.Run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := strings.Count(out.String(), "Which language"); n != 2 {
		t.Errorf("want two greetings (one per line), got %d:\n%.500s", n, out.String())
	}
}
