package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/identity"
	"github.com/checkinbot/checkinbot/store"
)

// IdentityStore is an engine that also keeps identity links (DESIGN §12):
// the link an engine result asks for, written in the event's transaction,
// and the identity.Links port the browser side takes them through.
type IdentityStore interface {
	Store
	identity.Links
	// PruneIdentity deletes links and flows expired at now.
	PruneIdentity(now time.Time) (int, error)
}

// RunIdentity runs the identity-link conformance tests against stores made
// by open, one fresh store per subtest.
func RunIdentity(t *testing.T, open func(t *testing.T) IdentityStore) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, IdentityStore)
	}{
		{"LinkCommittedWithItsReplyAndTakenOnce", testLinkSingleUse},
		{"NewLinkReplacesTheOld", testLinkReplaced},
		{"FailedEventLeavesNoLink", testLinkAtomic},
		{"EraseRemovesLinkAndFlows", testLinkErase},
		{"ExpiredLinksAndFlowsRefusedAndPruned", testLinkExpiry},
		{"FlowTakenOnce", testFlowSingleUse},
		{"MalformedHashesRefused", testLinkMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// tokenHash is the hex SHA-256 of a token, as the engine makes it.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// linkEvent commits one event of key that sends a reply carrying a link.
func linkEvent(t *testing.T, s IdentityStore, key, token string, at time.Time) store.Outcome {
	t.Helper()
	env := &store.Envelope{Channel: "telegram", Address: "chat-" + key}
	out, err := s.ProcessSend(key, "", at, env, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
		st.Status = dialogs.StatusActive
		r.Replies = []dialogs.Reply{{Text: "open the link", Sensitive: true}}
		r.IdentityLink = &dialogs.IdentityLink{TokenHash: tokenHash(token), Provider: "mydid", Lang: "ms",
			Expires: at.Add(identity.LinkTTL)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var ctx = context.Background()

func testLinkSingleUse(t *testing.T, s IdentityStore) {
	out := linkEvent(t, s, "user-a", "tok-a", t0)
	if len(out.Sends) != 1 {
		t.Fatalf("the link's reply was not queued with it: %d sends", len(out.Sends))
	}
	l, err := s.TakeLink(ctx, tokenHash("tok-a"), t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("TakeLink right after the event: %v", err)
	}
	want := identity.Link{TokenHash: tokenHash("tok-a"), RegistrantKey: "user-a", Provider: "mydid", Lang: "ms", Expires: t0.Add(identity.LinkTTL)}
	if l != want {
		t.Errorf("TakeLink = %+v, want %+v", l, want)
	}
	if _, err := s.TakeLink(ctx, tokenHash("tok-a"), t0.Add(time.Minute)); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("a second TakeLink gave %v, want ErrLinkInvalid", err)
	}
	if _, err := s.TakeLink(ctx, tokenHash("tok-unknown"), t0); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("an unknown link gave %v", err)
	}
}

func testLinkReplaced(t *testing.T, s IdentityStore) {
	linkEvent(t, s, "user-a", "tok-1", t0)
	linkEvent(t, s, "user-b", "tok-b", t0)
	linkEvent(t, s, "user-a", "tok-2", t0.Add(time.Minute))
	if _, err := s.TakeLink(ctx, tokenHash("tok-1"), t0.Add(2*time.Minute)); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("the replaced link still works: %v", err)
	}
	for _, tok := range []string{"tok-2", "tok-b"} {
		if _, err := s.TakeLink(ctx, tokenHash(tok), t0.Add(2*time.Minute)); err != nil {
			t.Errorf("%s: %v", tok, err)
		}
	}
}

// testLinkAtomic: an event whose transaction fails after the engine asked
// for a link (its state cannot be encoded) leaves no link and no reply;
// the same event that commits leaves both, readable as soon as
// ProcessSend returns.
func testLinkAtomic(t *testing.T, s IdentityStore) {
	_, err := s.ProcessSend("user-a", "", t0, &store.Envelope{Channel: "telegram", Address: "1"},
		handler(nil, func(st *dialogs.State, r *dialogs.Result) {
			st.Profile.LastLocation = &dialogs.Location{Lat: math.NaN()} // JSON cannot encode it
			r.Replies = []dialogs.Reply{{Text: "open the link"}}
			r.IdentityLink = &dialogs.IdentityLink{TokenHash: tokenHash("tok-x"), Provider: "mydid", Expires: t0.Add(identity.LinkTTL)}
		}))
	if err == nil {
		t.Fatal("an unencodable state was stored")
	}
	// Let any write queued meanwhile commit before looking.
	for i := range 5 {
		linkEvent(t, s, "user-flush", "tok-flush", t0)
		if _, err := s.TakeLink(ctx, tokenHash("tok-x"), t0.Add(time.Minute)); !errors.Is(err, identity.ErrLinkInvalid) {
			t.Fatalf("look %d: the failed event left a usable link (%v)", i, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if sends, _ := s.PendingSends("user-a"); len(sends) != 0 {
		t.Errorf("the failed event queued %d replies", len(sends))
	}
}

func testLinkErase(t *testing.T, s IdentityStore) {
	linkEvent(t, s, "user-a", "tok-a", t0)
	linkEvent(t, s, "user-b", "tok-b", t0)
	flow := func(key, state string) identity.Flow {
		return identity.Flow{StateHash: tokenHash(state), RegistrantKey: key, Provider: "mydid", Nonce: "n", CodeVerifier: "v",
			Expires: t0.Add(identity.LinkTTL)}
	}
	for _, f := range []identity.Flow{flow("user-a", "st-a"), flow("user-b", "st-b")} {
		if err := s.PutFlow(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ProcessSend("user-a", "", t0, nil, handler(nil, func(_ *dialogs.State, r *dialogs.Result) { r.Erase = true })); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLink(ctx, tokenHash("tok-a"), t0); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("an erased registrant's link still works: %v", err)
	}
	if _, err := s.TakeFlow(ctx, tokenHash("st-a"), t0); !errors.Is(err, identity.ErrFlowInvalid) {
		t.Errorf("an erased registrant's flow still works: %v", err)
	}
	if _, err := s.TakeLink(ctx, tokenHash("tok-b"), t0); err != nil {
		t.Errorf("another registrant's link went with it: %v", err)
	}
	if _, err := s.TakeFlow(ctx, tokenHash("st-b"), t0); err != nil {
		t.Errorf("another registrant's flow went with it: %v", err)
	}
}

func testLinkExpiry(t *testing.T, s IdentityStore) {
	linkEvent(t, s, "user-a", "tok-a", t0)
	linkEvent(t, s, "user-b", "tok-b", t0.Add(5*time.Minute))
	linkEvent(t, s, "user-c", "tok-c", t0)
	if err := s.PutFlow(ctx, identity.Flow{StateHash: tokenHash("st-a"), RegistrantKey: "user-a", Expires: t0.Add(identity.LinkTTL)}); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(identity.LinkTTL) // expiry itself is too late
	if _, err := s.TakeLink(ctx, tokenHash("tok-a"), at); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("a link at its expiry gave %v", err)
	}
	if n, err := s.PruneIdentity(at); err != nil || n != 2 { // tok-c and st-a
		t.Errorf("PruneIdentity = %d, %v; want 2", n, err)
	}
	if _, err := s.TakeLink(ctx, tokenHash("tok-c"), t0); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("a pruned link still works: %v", err)
	}
	if _, err := s.TakeFlow(ctx, tokenHash("st-a"), t0); !errors.Is(err, identity.ErrFlowInvalid) {
		t.Errorf("a pruned flow still works: %v", err)
	}
	if _, err := s.TakeLink(ctx, tokenHash("tok-b"), at); err != nil {
		t.Errorf("a live link was refused or pruned: %v", err)
	}
}

func testFlowSingleUse(t *testing.T, s IdentityStore) {
	f := identity.Flow{StateHash: tokenHash("st"), LinkHash: tokenHash("tok"), RegistrantKey: "user-a", Provider: "mydid", Lang: "th",
		Nonce: "nonce", CodeVerifier: "verifier", DPoPKey: []byte{1, 2, 3}, Expires: t0.Add(identity.LinkTTL)}
	if err := s.PutFlow(ctx, f); err != nil {
		t.Fatal(err)
	}
	got, err := s.TakeFlow(ctx, f.StateHash, t0.Add(time.Minute))
	if err != nil || got.Nonce != f.Nonce || got.CodeVerifier != f.CodeVerifier || string(got.DPoPKey) != string(f.DPoPKey) ||
		got.RegistrantKey != f.RegistrantKey || got.LinkHash != f.LinkHash || got.Lang != "th" || !got.Expires.Equal(f.Expires) {
		t.Fatalf("TakeFlow = %+v, %v", got, err)
	}
	if _, err := s.TakeFlow(ctx, f.StateHash, t0.Add(time.Minute)); !errors.Is(err, identity.ErrFlowInvalid) {
		t.Errorf("a second TakeFlow gave %v", err)
	}
}

func testLinkMalformed(t *testing.T, s IdentityStore) {
	linkEvent(t, s, "user-a", "tok-a", t0)
	h := tokenHash("tok-a")
	for _, bad := range []string{"", "tok-a", h[:63], h + "0", "../" + h[3:], string([]byte{0xff}) + h[1:]} {
		if _, err := s.TakeLink(ctx, bad, t0); !errors.Is(err, identity.ErrLinkInvalid) {
			t.Errorf("TakeLink(%q) gave %v", bad, err)
		}
		if _, err := s.TakeFlow(ctx, bad, t0); !errors.Is(err, identity.ErrFlowInvalid) {
			t.Errorf("TakeFlow(%q) gave %v", bad, err)
		}
		if err := s.PutFlow(ctx, identity.Flow{StateHash: bad, Expires: t0.Add(time.Minute)}); err == nil {
			t.Errorf("PutFlow(%q) was accepted", bad)
		}
	}
	if _, err := s.TakeLink(ctx, h, t0); err != nil {
		t.Errorf("malformed takes consumed the real link: %v", err)
	}
}
