package boltstore

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
)

// BenchmarkSealCPU: what sealing adds to the single writer's work for one
// check-in — read and write a registrant with a full profile, its index
// row and a reply in the send queue, then its acknowledgement — with
// fsync off (NoSync), so the CPU cost shows instead of the disk's. Both
// variants run in the same binary, one after the other, on 1,024
// registrants.
//
//	go test ./store/boltstore -run '^$' -bench SealCPU -count 3
func BenchmarkSealCPU(b *testing.B) {
	m, _ := seal.NewMasterKey(bytes.Repeat([]byte{9}, seal.KeySize))
	for _, v := range []struct {
		name string
		opt  Options
	}{{"sealed=off", Options{}}, {"sealed=on", Options{Keyring: &seal.Keyring{Current: m}}}} {
		b.Run(v.name, func(b *testing.B) {
			s, err := OpenWith(filepath.Join(b.TempDir(), "checkinbot.db"), v.opt)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.db.NoSync = true
			const users = 1024
			profile := dialogs.Profile{Name: "Siti Nurhaliza binti Ahmad", Passport: "A12345678", Nationality: "MY", Country: "KH",
				City: "Phnom Penh", Employer: "Golden Star Garments", TrustedContact: "Aunty Mei", Phone: "+855 12 345 678"}
			env := &store.Envelope{Channel: "telegram", Address: "7712345678"}
			event := func(i int) {
				key := fmt.Sprintf("%064x", i%users)
				out, err := s.ProcessSend(key, "", t0, env, func(prev dialogs.State, _ bool) dialogs.Result {
					st := prev
					st.Key, st.Status, st.Profile, st.Lang = key, dialogs.StatusActive, profile, "en"
					st.Keyword = dialogs.Keyword{Hash: bytes.Repeat([]byte{1}, 32), Len: 10}
					st.LastCheckin, st.NextDue = t0, t0.Add(24*time.Hour)
					return dialogs.Result{State: st, Replies: []dialogs.Reply{{Text: "Check-in received. Your next check-in is at 09:00, 03/03."}}}
				})
				if err != nil {
					b.Fatal(err)
				}
				var acks []store.SendAck
				for _, it := range out.Sends {
					acks = append(acks, store.SendAck{Seq: it.Seq, UserKey: it.UserKey})
				}
				if err := s.AckSends(acks); err != nil {
					b.Fatal(err)
				}
			}
			for i := range users {
				event(i)
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				event(i)
			}
		})
	}
}
