package config

import (
	"errors"
	"fmt"

	"github.com/checkinbot/checkinbot/errs"
)

// validateIdentity checks the [identity] table (identity.Settings.Validate:
// URLs, ids, kinds, which key goes with which client authentication) and
// what only the whole file can tell: that each provider is offered to a
// nationality some embassy serves. Keys and secrets themselves are read
// at start by identity.New, whose errors IdentityError names the same way.
func (c *Config) validateIdentity() error {
	if err := c.Identity.Validate(); err != nil {
		return identityError(err)
	}
	served := map[string]bool{}
	for _, e := range c.Embassies {
		for _, n := range e.Nationalities {
			served[n] = true
		}
	}
	for i, p := range c.Identity.Providers {
		for _, n := range p.Nationalities {
			if !served[n] {
				return configError(errs.ENOTFOUND, fmt.Sprintf("identity.providers[%d].nationalities", i),
					"%q is served by no [[embassy]]: nobody would be offered %q", n, p.ID)
			}
		}
	}
	return nil
}

// identityError puts an identity.Settings error under the [identity] key.
func identityError(err error) error {
	var e *errs.Error
	if !errors.As(err, &e) {
		return &Error{Code: errs.EINVALID, Key: "identity", Reason: err.Error(), Err: err}
	}
	return &Error{Code: e.Code, Key: "identity." + e.Key, Reason: e.Reason, Err: err}
}

// IdentityError names the configuration file in an error of identity.New
// (a key file that cannot be read, a variable that is not set), so it
// reads like every other configuration error: "file: key: reason".
func (c *Config) IdentityError(err error) error {
	var e *errs.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	out := *e
	out.File = c.Name
	return &out
}
