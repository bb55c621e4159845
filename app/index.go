package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/checkinbot/checkinbot/dialogs"
)

// routingFingerprint identifies how a directory routes citizens to
// embassies: the store rebuilds its per-embassy registrant index when it
// changes (an embassy added, a nationality moved), and only then.
func routingFingerprint(d dialogs.Directory) string {
	type route struct{ ID, Nationalities, Countries any }
	rs := make([]route, 0, len(d.Embassies))
	for _, e := range d.Embassies {
		rs = append(rs, route{e.ID, e.Nationalities, e.Countries})
	}
	b, _ := json.Marshal(rs)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
