// Package errs is checkinbot's one error type: a stable code a caller can
// decide on, and the file, key and reason a person can act on.
//
// Code decides, text informs. A caller that must tell "not found" from
// "conflict" (the embassy API choosing a status, `config check` choosing
// what to say) asks with ErrorCode or errors.As, never by reading
// Error(): messages may be reworded, codes may not. The pattern is
// benbjohnson/wtf's: one type, a few codes, mapped to
// HTTP statuses in one place (HTTPStatus), internals never shown to users
// (Public).
//
// The package imports nothing of ours, so the domain, storage, config and
// API packages can all return it without import cycles.
package errs

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error class. Its string value is part
// of the contract (the embassy API will put it in JSON bodies, operators
// may grep for it): never change or reuse one, only add.
type Code string

// The codes. Each says what went wrong in a way a caller can act on; the
// HTTP status each maps to is in HTTPStatus.
const (
	// EINVALID: a value is present but wrong (format, range, order,
	// unknown word, unparseable text). The caller must change the value.
	EINVALID Code = "invalid"
	// EMISSING: a required value is absent or empty (a key, a list
	// entry, an environment variable). The caller must supply it.
	EMISSING Code = "missing"
	// EUNKNOWNKEY: a key nobody reads (misspelt, or in the wrong table).
	// Refused rather than ignored, so a typo never silently keeps a default.
	EUNKNOWNKEY Code = "unknown_key"
	// ENOTFOUND: something referred to does not exist (a file, a country
	// code with no [[country]] entry, a case the caller may not see).
	ENOTFOUND Code = "not_found"
	// ECONFLICT: the value clashes with another (an id used twice, two
	// keys that exclude each other, a state change that lost a race).
	ECONFLICT Code = "conflict"
	// EUNAUTHORIZED: the caller did not prove who it is (API key or
	// signature missing or wrong).
	EUNAUTHORIZED Code = "unauthorized"
	// EINTERNAL: a fault of ours, not the caller's. Its details are for
	// logs only (Public hides them). Any error that is not an *Error, or
	// an *Error without a code, counts as EINTERNAL.
	EINTERNAL Code = "internal"
)

// Error is a problem at one key of one source, with a stable code. Its
// message is "file: key: reason", leaving out what is empty: exactly what
// operators have always been shown.
type Error struct {
	// Code is the class of the problem, for decisions.
	Code Code
	// File is where the problem is: a configuration file's name. Empty
	// when the problem is not in a file (an API request).
	File string
	// Key is the dotted path of the offending value, with indexes:
	// "embassy[1].webhook_url", or an API field name. Empty when the
	// problem is the source as a whole.
	Key string
	// Reason says what is wrong and, where it can, how to fix it, in
	// words for the person who must fix it. Never a secret, message text,
	// keyword, phone number or name.
	Reason string
	// Err is the underlying cause, kept for errors.Is/As and for logs;
	// it is not part of the message.
	Err error
}

// Error returns "file: key: reason" without the empty parts.
func (e *Error) Error() string {
	s := e.Reason
	if e.Key != "" {
		s = e.Key + ": " + s
	}
	if e.File != "" {
		s = e.File + ": " + s
	}
	return s
}

// Unwrap returns the cause, so errors.Is(err, fs.ErrNotExist) and the like
// still work through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted reason; set File and
// Key on the result where they are known.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain: "" for a
// nil err, EINTERNAL for an error that is not ours or has no code (so an
// unexpected error is never taken for the caller's fault).
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return EINTERNAL
}

// Public returns what a remote caller may be told about err: "key: reason"
// for an error of the caller's making, and only "internal error" for
// EINTERNAL, whose details (paths, causes) stay in the logs. The file is
// left out: it is a path on our machine.
func Public(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if ErrorCode(err) == EINTERNAL || !errors.As(err, &e) {
		return "internal error"
	}
	return (&Error{Key: e.Key, Reason: e.Reason}).Error()
}

// httpStatus is the one place codes meet HTTP.
var httpStatus = map[Code]int{
	EINVALID:      http.StatusBadRequest,
	EMISSING:      http.StatusBadRequest,
	EUNKNOWNKEY:   http.StatusBadRequest,
	ENOTFOUND:     http.StatusNotFound,
	ECONFLICT:     http.StatusConflict,
	EUNAUTHORIZED: http.StatusUnauthorized,
	EINTERNAL:     http.StatusInternalServerError,
}

// HTTPStatus maps a code to the status the API answers with; an unknown
// or empty code is a 500, like any error that is not ours.
func HTTPStatus(code Code) int {
	if s, ok := httpStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}
