package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/checkinbot/checkinbot/errs"
)

// Codes the API answers with besides errs' codes (which it maps with
// errs.HTTPStatus). Stable: clients decide on them.
const (
	// CodeTooLarge: the body is over MaxBody (413).
	CodeTooLarge errs.Code = "too_large"
	// CodeRateLimited: the token's request budget is spent (429); the
	// Retry-After header says when to try again.
	CodeRateLimited errs.Code = "rate_limited"
	// CodeMethodNotAllowed: the path exists but not with this method
	// (405); the Allow header lists the methods that work.
	CodeMethodNotAllowed errs.Code = "method_not_allowed"
)

// errorBody is every error response: {"error": {"code", "message"}}, and
// for a conflict the case as it stands.
type errorBody struct {
	Error errorDetail `json:"error"`
	Case  *caseView   `json:"case,omitempty"`
}

type errorDetail struct {
	Code    errs.Code `json:"code"`
	Message string    `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeCode(w http.ResponseWriter, status int, code errs.Code, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

// writeErr answers err with its code's status and its public message;
// an internal error is logged (its text never holds a note or a name)
// and answered with "internal error" only.
func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	code := errs.ErrorCode(err)
	if code == errs.EINTERNAL {
		a.opt.Log.Error("embassy API request failed", "route", routeOf(r), "err", err)
	}
	var e *errs.Error
	if errors.As(err, &e) && e.Code == CodeTooLarge {
		writeCode(w, http.StatusRequestEntityTooLarge, code, errs.Public(err))
		return
	}
	writeCode(w, errs.HTTPStatus(code), code, errs.Public(err))
}

func invalid(key, reason string) error {
	return &errs.Error{Code: errs.EINVALID, Key: key, Reason: reason}
}
