package boltstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/identity"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Verified identity (DESIGN §12, issue 14): the single-use links sent from
// the chat and the browser flows they start. The store implements
// identity.Links. A link is written by writeIdentityLink inside Process's
// transaction, the one that queues the reply carrying its URL, so a link
// exists exactly when its message is owed to the citizen; it is keyed by
// the SHA-256 of its token (the engine never hands the store the token),
// so the data file alone cannot be used to verify as anyone. Every take is
// a write: a link or a flow is returned once and deleted in that same
// transaction, and an expired one is deleted when found and otherwise by
// PruneIdentity.
var (
	// bucketIDLinks: token hash (hex) → identity.Link JSON.
	bucketIDLinks = []byte("idlinks")
	// bucketIDLinkUser: user key → the token hash of their live link, so a
	// new link (a second press) or an erase removes the old one.
	bucketIDLinkUser = []byte("idlinks_user")
	// bucketIDFlows: state hash (hex) → identity.Flow JSON.
	bucketIDFlows = []byte("idflows")
)

func init() { allBuckets = append(allBuckets, bucketIDLinks, bucketIDLinkUser, bucketIDFlows) }

// The store is the chat side's storage port of package identity.
var _ identity.Links = (*Store)(nil)

// writeIdentityLink keeps the registrant's link in step with one event,
// inside its transaction: a new link replaces the old one; a registration
// that ends — a real /delete (an erase) or a covert one (the phone sees a
// fresh start) — loses its link and any flow it started, so a link opened
// after either ends on the same failure page.
func writeIdentityLink(tx *bolt.Tx, key string, prev dialogs.State, res dialogs.Result) error {
	l := res.IdentityLink
	ended := res.Erase || (prev.Registered() && !res.State.Registered())
	if l == nil && !ended {
		return nil
	}
	links, users := tx.Bucket(bucketIDLinks), tx.Bucket(bucketIDLinkUser)
	if old := users.Get([]byte(key)); old != nil {
		if err := links.Delete(bytes.Clone(old)); err != nil {
			return err
		}
		if err := users.Delete([]byte(key)); err != nil {
			return err
		}
	}
	if ended {
		return deleteFlowsOf(tx.Bucket(bucketIDFlows), key)
	}
	if !validHash(l.TokenHash) {
		return fmt.Errorf("identity link: token hash is not hex SHA-256")
	}
	if err := putSealed(links.Tx(), bucketIDLinks, []byte(l.TokenHash), identity.Link{TokenHash: l.TokenHash, RegistrantKey: key,
		Provider: l.Provider, Lang: l.Lang, Expires: l.Expires.UTC()}); err != nil {
		return err
	}
	return users.Put([]byte(key), []byte(l.TokenHash))
}

// deleteFlowsOf removes every flow of one registrant.
func deleteFlowsOf(flows *bolt.Bucket, key string) error {
	var gone [][]byte
	if err := flows.ForEach(func(k, v []byte) error {
		var f identity.Flow
		if getSealed(flows.Tx(), bucketIDFlows, k, v, &f) != nil || f.RegistrantKey == key {
			gone = append(gone, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range gone {
		if err := flows.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// validHash reports whether s is a lower-case hex SHA-256.
func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == string(bytes.ToLower([]byte(s)))
}

// TakeLink consumes the link with this token hash: it is returned once and
// deleted in the same transaction. Unknown, used and expired links are all
// identity.ErrLinkInvalid (an expired one is deleted too).
func (s *Store) TakeLink(ctx context.Context, tokenHash string, now time.Time) (identity.Link, error) {
	if !validHash(tokenHash) {
		return identity.Link{}, identity.ErrLinkInvalid
	}
	if err := ctx.Err(); err != nil {
		return identity.Link{}, err
	}
	var l identity.Link
	var found bool
	err := s.update(func(tx *bolt.Tx) error {
		l, found = identity.Link{}, false
		links, users := tx.Bucket(bucketIDLinks), tx.Bucket(bucketIDLinkUser)
		raw := links.Get([]byte(tokenHash))
		if raw == nil {
			return nil
		}
		found = getSealed(tx, bucketIDLinks, []byte(tokenHash), raw, &l) == nil
		if err := links.Delete([]byte(tokenHash)); err != nil {
			return err
		}
		if found && string(users.Get([]byte(l.RegistrantKey))) == tokenHash {
			return users.Delete([]byte(l.RegistrantKey))
		}
		return nil
	})
	if err != nil {
		return identity.Link{}, fmt.Errorf("store: take identity link: %w", err)
	}
	if !found || !now.Before(l.Expires) {
		return identity.Link{}, identity.ErrLinkInvalid
	}
	return l, nil
}

// PutFlow stores a browser flow until its callback (or PruneIdentity).
func (s *Store) PutFlow(ctx context.Context, f identity.Flow) error {
	if !validHash(f.StateHash) {
		return fmt.Errorf("store: put identity flow: state hash is not hex SHA-256")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.update(func(tx *bolt.Tx) error { return putSealed(tx, bucketIDFlows, []byte(f.StateHash), f) }); err != nil {
		return fmt.Errorf("store: put identity flow: %w", err)
	}
	return nil
}

// TakeFlow consumes the flow with this state hash: returned once, deleted
// in the same transaction; unknown, used and expired flows are all
// identity.ErrFlowInvalid.
func (s *Store) TakeFlow(ctx context.Context, stateHash string, now time.Time) (identity.Flow, error) {
	if !validHash(stateHash) {
		return identity.Flow{}, identity.ErrFlowInvalid
	}
	if err := ctx.Err(); err != nil {
		return identity.Flow{}, err
	}
	var f identity.Flow
	var found bool
	err := s.update(func(tx *bolt.Tx) error {
		f, found = identity.Flow{}, false
		flows := tx.Bucket(bucketIDFlows)
		raw := flows.Get([]byte(stateHash))
		if raw == nil {
			return nil
		}
		found = getSealed(tx, bucketIDFlows, []byte(stateHash), raw, &f) == nil
		return flows.Delete([]byte(stateHash))
	})
	if err != nil {
		return identity.Flow{}, fmt.Errorf("store: take identity flow: %w", err)
	}
	if !found || !now.Before(f.Expires) {
		return identity.Flow{}, identity.ErrFlowInvalid
	}
	return f, nil
}

// PruneIdentity deletes the links and flows expired at now (the periodic
// maintenance; taking one deletes it too). It returns how many it removed.
func (s *Store) PruneIdentity(now time.Time) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		links, users, flows := tx.Bucket(bucketIDLinks), tx.Bucket(bucketIDLinkUser), tx.Bucket(bucketIDFlows)
		var oldLinks, oldUsers, oldFlows [][]byte
		if err := links.ForEach(func(k, v []byte) error {
			var l identity.Link
			if getSealed(tx, bucketIDLinks, k, v, &l) != nil || !now.Before(l.Expires) {
				oldLinks = append(oldLinks, bytes.Clone(k))
				if string(users.Get([]byte(l.RegistrantKey))) == string(k) {
					oldUsers = append(oldUsers, []byte(l.RegistrantKey))
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := flows.ForEach(func(k, v []byte) error {
			var f identity.Flow
			if getSealed(tx, bucketIDFlows, k, v, &f) != nil || !now.Before(f.Expires) {
				oldFlows = append(oldFlows, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, del := range []struct {
			b    *bolt.Bucket
			keys [][]byte
		}{{links, oldLinks}, {users, oldUsers}, {flows, oldFlows}} {
			for _, k := range del.keys {
				if err := del.b.Delete(k); err != nil {
					return err
				}
			}
		}
		n = len(oldLinks) + len(oldFlows)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune identity links: %w", err)
	}
	return n, nil
}

// identityRow adds a verified identity to the registrant list's row.
func identityRow(row *store.RegistrantRow, st dialogs.State) {
	if v := st.Identity; v != nil {
		at := v.VerifiedAt.UTC()
		row.IdentityProvider, row.IdentityVerifiedAt, row.IdentityNameMatches = v.Provider, &at, v.NameMatches
	}
}
